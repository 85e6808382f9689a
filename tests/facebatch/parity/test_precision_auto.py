"""``--precision auto`` and the strict ``--precision bf16`` both ways — the command line and ``facebatch.embed``: the
same per-model choice said in the same notes and recorded in the same JSON field (a detector with a passing BF16
proof in BF16 where this CPU has it, the embedder whose proof failed in FP32), and the same one-line refusal where
bf16 is asked for and only one model is proven."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.configs.model_file import read_model_file
from facebatch.engines.runners.openvino_runner import detect_openvino_cpu
from tests.facebatch.parity.both_ways import assert_same_refusal
from tests.facebatch.workflows.test_models import DETECTOR_FIGURES, EMBEDDER_FIGURES, recorded

FAST = ["--threads", "1", "--lanes", "1"]
SIZE = ["--size", "160"]


@pytest.fixture
def models(models_dir: Path, batch_embedder: Path, tmp_path: Path) -> tuple[Path, Path]:
    """det_500m with a passing BF16 proof (its figures at 160) and mobilefacenet with a failing one, as measured."""
    detector = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    embedder = Path(shutil.copyfile(batch_embedder, tmp_path / batch_embedder.name))
    recorded(detector, False, DETECTOR_FIGURES, True, [], cpu=detect_openvino_cpu())
    cosine = "a face's cosine to its FP32 embedding is 0.9860, below 0.999"
    recorded(embedder, True, EMBEDDER_FIGURES, False, [cosine], cpu=detect_openvino_cpu())
    return detector, embedder


def test_auto_chooses_and_records_the_same_precision_per_model_both_ways(
    models, photos: list[Path], tmp_path: Path, capsys, caplog: pytest.LogCaptureFixture
):
    detector, embedder = models
    photo = str(next(p for p in photos if p.name == "t1.jpg"))
    argv = ["embed", photo, "--detector", str(detector), "--embedder", str(embedder), "--backend", "openvino"]
    # notes are INFO records: set the level (which clears logging's cached answers) before the CLI renders them
    caplog.set_level(logging.INFO, logger="facebatch.notes")
    capsys.readouterr()
    cli_json, api_json = tmp_path / "cli.json", tmp_path / "api.json"
    assert (
        main([*argv, "--precision", "auto", *SIZE, *FAST, "-o", str(tmp_path / "cli.npz"), "--json", str(cli_json)])
        == 0
    )
    said = [line[len("note: ") :] for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    at_160 = read_model_file(detector, size=(160, 160))
    settings = api.PipelineSettings(lanes=1)
    api.embed([photo], tmp_path / "api.npz", at_160, embedder, json=api_json, backend="openvino", precision="auto",
              threads=1, settings=settings)  # fmt: skip
    noted = [r.getMessage() for r in caplog.records if r.name == "facebatch.notes"]
    chosen = [json.loads(path.read_text())["precision"] for path in (cli_json, api_json)]
    assert chosen[0] == chosen[1]
    expected = "bf16" if detect_openvino_cpu().bf16 else "fp32"  # an AVX2-only CPU: FP32, said why
    assert (chosen[0]["detector"]["precision"], chosen[0]["embedder"]["precision"]) == (expected, "fp32")
    assert "failed its BF16 proof" in chosen[0]["embedder"]["why"]
    precision_notes = [line for line in said if line.startswith(("detector ", "embedder "))]
    assert len(precision_notes) == 2 and precision_notes == [n for n in noted if n.startswith(("detector ", "embed"))]


def test_strict_bf16_is_refused_both_ways_when_only_the_detector_is_proven(
    models, photos: list[Path], tmp_path: Path, capsys
):
    detector, embedder = models
    photo, out = str(photos[0]), str(tmp_path / "x.npz")
    argv = ["embed", photo, "-o", out, "--detector", str(detector), "--embedder", str(embedder)]
    error = assert_same_refusal(
        [*argv, "--backend", "openvino", "--precision", "bf16", *SIZE],
        lambda: api.embed(
            [photo], out, read_model_file(detector, size=(160, 160)), embedder, backend="openvino", precision="bf16"
        ),  # fmt: skip
        capsys,
    )
    assert error.field == "precision"
    if detect_openvino_cpu().bf16:
        assert "embedder mobilefacenet_128d_batch.onnx cannot run in precision bf16" in str(error)
        assert "failed its BF16 proof" in str(error)


def test_compare_records_each_models_precision_both_ways(models, photos: list[Path], tmp_path: Path):
    detector, embedder = models
    first, second = (str(next(p for p in photos if p.name == name)) for name in ("obama_1.jpg", "obama_2.jpg"))
    argv = ["compare", first, second, "--detector", str(detector), "--embedder", str(embedder), "--precision", "auto"]
    assert main([*argv, "--backend", "openvino", *SIZE, *FAST, "--json", str(tmp_path / "cli.json")]) == 0
    at_160 = read_model_file(detector, size=(160, 160))
    result = api.compare(first, second, at_160, embedder, backend="openvino", precision="auto", threads=1,
                         settings=api.PipelineSettings(lanes=1))  # fmt: skip
    printed = json.loads((tmp_path / "cli.json").read_text())
    assert printed["precision"] == result.to_dict()["precision"] and result.precision["embedder"]["precision"] == "fp32"
    assert printed["same_person"] == result.same


def test_bench_runs_each_model_in_autos_choice_both_ways(models, photos: list[Path], tmp_path: Path):
    detector, embedder = models
    folder = tmp_path / "two"
    folder.mkdir()
    for photo in photos[:2]:
        shutil.copy(photo, folder)
    argv = ["bench", "--pipeline", str(folder), "--detector", str(detector), "--embedder", str(embedder), *SIZE]
    argv += ["--rounds", "1", "--process-runs", "0", "--no-insightface", *FAST, "--backend", "openvino"]
    assert main([*argv, "--precision", "auto", "--json", str(tmp_path / "cli.json")]) == 0
    report = api.bench(pipeline=folder, detector=detector, embedder=embedder, size=(160, 160), backends="openvino",
                       precision="auto", rounds=1, process_runs=0, insightface=False, threads=1, lanes=1)  # fmt: skip
    from_cli = json.loads((tmp_path / "cli.json").read_text())
    expected = {"detector": "bf16" if detect_openvino_cpu().bf16 else "fp32", "embedder": "fp32"}
    assert from_cli["precisions"]["facebatch pipeline"] == report.to_dict()["precisions"]["facebatch pipeline"]
    assert from_cli["precisions"]["facebatch pipeline"] == expected
    if detect_openvino_cpu().bf16:  # the BF16 cell against the BF16 product measured like the INT8 one
        assert from_cli["bf16_peak"] > 0 and report.bf16_peak > 0
        assert report.share_of_peak(report.contender("facebatch pipeline")) is not None
