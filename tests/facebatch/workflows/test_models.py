"""Which precision each of the pipeline's models runs in: ``auto`` takes per model the fastest this CPU class has a
passing proof for (the gated INT8 twin, else BF16 on openvino where the model's BF16 proof passed, else FP32), says
each choice in one note line and hands the runners a per-model answer (a BF16 detector beside an FP32 embedder).
The BF16 records here are written by ``write_record`` with stated figures and a stated CPU, so resolution is tested
on any CPU; what needs real BF16 compute skips by name where OpenVINO lists none (an AVX2-only CI)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.environment import int8_cpu_class
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.options import PipelineOptions
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.engines.runners.openvino_runner import OpenVinoCpu, detect_openvino_cpu
from facebatch.workflows.bf16_record import bf16_record_path, write_record
from facebatch.workflows.faces import PipelineRun, open_faces
from facebatch.workflows.models import ModelOptions, choose_models, pipeline_models

HERE = OpenVinoCpu("2026.4.1", ("BF16", "FP32", "INT8"), "AMD EPYC", "avx512_bf16")
NO_BF16 = OpenVinoCpu("2026.4.1", ("FP32", "INT8", "EXPORT_IMPORT"), "AMD EPYC (AVX2)", "none")
SIZE = (160, 160)
DETECTOR_FIGURES = {  # SCRFD-500M at 160 on the fixture photos (docs/bf16.md)
    "photos": 17,
    "reference_faces": 34,
    "candidate_faces": 34,
    "matched": 34,
    "iou": {"min": 0.983},
    "landmark_error_px": {"max": 1.02},
    "missed": [],
    "extra": [],
    "labelled": 20,
    "recall_reference": 16,
    "recall_candidate": 16,
}
EMBEDDER_FIGURES = {  # mobilefacenet_128d on the fixture photos: pairs ordered, the worst face's cosine 0.986
    "faces": 188,
    "cosine": {"min": 0.986, "mean": 0.998},
    "ordering_reference": True,
    "ordering_candidate": True,
}
needs_bf16 = pytest.mark.skipif(not detect_openvino_cpu().bf16, reason="this CPU's OpenVINO lists no BF16")


def recorded(
    model: Path,
    embedder: bool,
    figures: dict,
    passed: bool,
    failures: list[str],
    size: tuple[int, int] = SIZE,
    cpu: OpenVinoCpu = HERE,
) -> Path:
    """A BF16 proof record of ``model`` as the proof writes it (stated figures, measured on ``cpu``)."""
    stated = {
        "model": model.name,
        "sha256": read_model_file(model).sha256,
        "embedder": embedder,
        "size": None if embedder else list(size),
        "passed": passed,
        "failures": failures,
        "figures": figures,
        "cpu": cpu.to_dict(),
        "openvino": cpu.version,
    }
    write_record(bf16_record_path(model), stated)
    return model


@pytest.fixture
def proven(models_dir: Path, batch_embedder: Path, tmp_path: Path) -> tuple[Path, Path]:
    """det_500m with a passing BF16 proof beside it, and mobilefacenet with a failing one (cosine 0.986)."""
    detector = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    embedder = Path(shutil.copyfile(batch_embedder, tmp_path / batch_embedder.name))
    recorded(detector, False, DETECTOR_FIGURES, True, [])
    cosine = "a face's cosine to its FP32 embedding is 0.9860, below 0.999"
    recorded(embedder, True, EMBEDDER_FIGURES, False, [cosine])
    return detector, embedder


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The precision notes (not the embedder's preprocessing note)."""
    said = [r.getMessage() for r in caplog.records if r.name == "facebatch.notes"]
    return [line for line in said if line.startswith(("detector ", "embedder "))]


def auto(detector: Path, embedder: Path, cpu: OpenVinoCpu) -> ModelOptions:
    return ModelOptions(detector, embedder, size=SIZE, precision="auto", openvino=cpu)


def test_auto_runs_a_proven_detector_in_bf16_beside_an_fp32_embedder(proven, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="facebatch.notes")
    chosen = choose_models(auto(*proven, HERE), backend="openvino")
    assert (chosen.detector.precision, chosen.embedder.precision) == ("bf16", "fp32")
    assert chosen.bf16_files == {proven[0]}
    assert notes(caplog) == [
        "detector det_500m.onnx: bf16 (its BF16 proof passed on this CPU class)",
        "embedder mobilefacenet_128d_batch.onnx: fp32 (no INT8 file quantized from mobilefacenet_128d_batch.onnx is "
        "beside it; not bf16: mobilefacenet_128d_batch.onnx failed its BF16 proof (a face's cosine to its FP32 "
        "embedding is 0.9860, below 0.999))",
    ]
    assert chosen.to_dict()["detector"] == {
        "file": "det_500m.onnx",
        "precision": "bf16",
        "why": "its BF16 proof passed on this CPU class",
    }


def test_auto_on_a_cpu_without_bf16_runs_both_in_fp32_and_says_why(proven, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="facebatch.notes")
    chosen = choose_models(auto(*proven, NO_BF16), backend="openvino")
    assert (chosen.detector.precision, chosen.embedder.precision) == ("fp32", "fp32") and not chosen.bf16_files
    said = notes(caplog)
    assert len(said) == 2 and said[0].startswith("detector det_500m.onnx: fp32 (no INT8 file quantized from")
    assert all("has no BF16 in OpenVINO's capabilities" in line for line in said)


def test_auto_never_runs_bf16_off_openvino(proven, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="facebatch.notes")
    chosen = choose_models(auto(*proven, HERE), backend="ort-cpu")
    assert (chosen.detector.precision, chosen.embedder.precision) == ("fp32", "fp32")
    assert "not bf16: BF16 runs on the openvino backend only, not on ort-cpu" in notes(caplog)[0]
    # a caller that names no backend (a gallery, a benchmark) gets no BF16 either: its runners are told nothing
    assert [m.path for m in pipeline_models(auto(*proven, HERE))] == list(proven)
    assert not choose_models(auto(*proven, HERE)).bf16_files


def test_strict_bf16_still_refuses_when_one_model_is_not_proven(proven):
    with pytest.raises(SpecError) as refused:
        choose_models(ModelOptions(*proven, size=SIZE, precision="bf16", openvino=HERE), backend="openvino")
    assert refused.value.field == "precision"
    assert str(refused.value).startswith(
        "embedder mobilefacenet_128d_batch.onnx cannot run in precision bf16: mobilefacenet_128d_batch.onnx failed "
        "its BF16 proof"
    )


def test_fp32_is_said_nowhere_and_recorded_as_asked(proven, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="facebatch.notes")
    chosen = choose_models(ModelOptions(*proven, size=SIZE, precision="fp32", openvino=HERE), backend="openvino")
    assert chosen.to_dict()["embedder"]["precision"] == "fp32" and not chosen.bf16_files and not notes(caplog)


def test_the_runner_factory_takes_each_models_precision(proven):
    detector, embedder = (read_model_file(p) for p in proven)
    options = RunnerOptions(threads=1, bf16_files=frozenset({detector.path}))
    assert options.runs_bf16(detector) and not options.runs_bf16(embedder)
    assert make_onnx_runner("openvino", detector, SIZE, options).inference_precision == "bf16"
    assert make_onnx_runner("openvino", embedder, (112, 112), options).inference_precision == "f32"
    with pytest.raises(SpecError, match="precision bf16 runs on the openvino backend only, not on ort-cpu"):
        make_onnx_runner("ort-cpu", detector, SIZE, options)
    assert make_onnx_runner("ort-cpu", embedder, (112, 112), options).precision == "fp32"


@needs_bf16
def test_auto_opens_a_bf16_detector_and_an_fp32_embedder(proven):
    run = PipelineRun(
        auto(*proven, detect_openvino_cpu()), backend="openvino", pipeline=PipelineOptions(lanes=1), threads=1
    )
    with open_faces(run) as pipeline:
        assert pipeline.detector.precision == "bf16" and pipeline.embedder.precision == "fp32"


def test_auto_takes_a_gated_int8_twin_first(small_detector: Path, photos: list[Path], tmp_path: Path, caplog):
    """Quantized for real (SCRFD-500M at 64, 4 photos, one recipe, a loose gate): the twin beats a BF16 proof."""
    from facebatch.workflows.quantize import QuantizeOptions, quantize_int8

    caplog.set_level(logging.INFO, logger="facebatch.notes")
    fp32 = Path(shutil.copyfile(small_detector, tmp_path / small_detector.name))
    shutil.copyfile(small_detector.with_suffix(".json"), fp32.with_suffix(".json"))
    options = QuantizeOptions(photos=photos[:4], bench=False, max_drop=0.5, recipes=("u8s8",))
    twin = quantize_int8(fp32, options, tmp_path / f"{fp32.stem}_int8.onnx")
    assert twin.passed
    recorded(fp32, False, DETECTOR_FIGURES, True, [], size=(64, 64))  # a passing BF16 proof too: INT8 comes first
    chosen = choose_models(ModelOptions(fp32, precision="auto", openvino=HERE), embed=False, backend="openvino")
    assert chosen.detector.precision == "int8" and chosen.detector.file.path == twin.path
    assert (
        notes(caplog)[-1] == f"detector {twin.path.name}: int8 (quantize's gate passed it on {int8_cpu_class()} CPUs)"
    )
