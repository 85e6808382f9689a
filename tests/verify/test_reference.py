"""Check 4: parity against torch (rebuilt from the artifact's metadata and weights) or
against another ONNX file (the official batch-1 layout unfolded), every failure collected."""

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.errors import SpecError, WeightsError
from facebatch.exporter.scrfd_export import ScrfdExportOptions, export_scrfd
from facebatch.exporter.torch_reference import torch_reference
from facebatch.verify.reference import onnx_reference
from facebatch.verify.verify_job import VerifyOptions, run_checks
from facebatch.workflows.fix import fix_onnx
from tests.conftest import slow_fixture
from tests.data.scrfd_config import CONFIG_TEXT

OPTIONS = VerifyOptions(batch_sizes=(1, 3), sizes=((320, 320),))


def check(report, number: int):
    return next(c for c in report.checks if c.number == number)


@pytest.fixture(scope="module")
@slow_fixture("exports a model from torch")
def imported_500m(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our export of the real SCRFD-500M weights, imported from the official-layout file."""
    out = tmp_path_factory.mktemp("imported")
    request = ScrfdExportOptions(
        weights=models_dir / "det_500m.onnx", height=320, width=320, out_dir=out, parity_batch_sizes=(1, 2)
    )
    return export_scrfd(request).onnx_path


def test_our_export_matches_the_official_file_and_torch(imported_500m: Path, models_dir: Path, photos: list[Path]):
    options = replace(OPTIONS, photos=photos[:3], sizes=None)
    official = run_checks(imported_500m, replace(options, reference=onnx_reference(models_dir / "det_500m.onnx")))
    assert official.passed, [c.summary for c in official.checks]
    parity = check(official, 4)
    assert [r["label"] for r in parity.data["reports"]] == ["batch 1", "batch 3"]
    assert all(o["max_abs_diff"] < 1e-4 for r in parity.data["reports"] for o in r["outputs"])
    assert len(parity.data["reports"][0]["outputs"]) == 9  # score/bbox/kps × 3 strides, by shared names

    torch_ref = run_checks(imported_500m, replace(options, reference=torch_reference()))  # weights from the sidecar
    assert check(torch_ref, 4).status == "pass", check(torch_ref, 4).summary
    assert "torch scrfd_500m_bnkps (onnx det_500m.onnx)" in check(torch_ref, 4).summary


def test_torch_reference_needs_the_right_weights(imported_500m: Path, models_dir: Path, tmp_path: Path):
    moved = tmp_path / imported_500m.name  # without its sidecar, the weights path is unknown
    shutil.copy(imported_500m, moved)
    with pytest.raises(WeightsError, match="pass reference_weights: the onnx file .* sha256 77a721d9"):
        run_checks(moved, replace(OPTIONS, sizes=None, reference=torch_reference()))
    wrong = torch_reference(weights=models_dir / "det_2.5g.onnx")
    with pytest.raises(WeightsError, match="det_2.5g.onnx is not the file .* was exported from"):
        run_checks(moved, replace(OPTIONS, sizes=None, reference=wrong))
    right = torch_reference(weights=models_dir / "det_500m.onnx")
    assert check(run_checks(moved, replace(OPTIONS, sizes=None, reference=right)), 4).status == "pass"


def test_a_different_model_fails_with_every_output_listed(models_dir: Path, tmp_path: Path):
    fixed = fix_onnx(models_dir / "det_2.5g.onnx", tmp_path / "det_2.5g_fixed.onnx").path
    report = run_checks(fixed, replace(OPTIONS, reference=onnx_reference(models_dir / "det_500m.onnx")))
    parity = check(report, 4)
    assert parity.status == "fail" and not report.passed
    assert [len([o for o in r["outputs"] if not o["passed"]]) for r in parity.data["reports"]] == [9, 9]
    assert "9 of 9 outputs differ" in parity.summary
    assert {c.number: c.status for c in report.checks}[1] == "pass"  # independent, just not the same model


def test_repaired_embedder_matches_its_batch_1_original_by_cosine_too(models_dir: Path, tmp_path: Path):
    original = models_dir / "mobilefacenet_128d.onnx"
    fixed = fix_onnx(original, tmp_path / "mfn_fixed.onnx").path
    report = run_checks(fixed, VerifyOptions(batch_sizes=(1, 4), reference=onnx_reference(original)))
    parity = check(report, 4)
    assert report.passed and parity.status == "pass", parity.summary
    assert "min cosine 1.000000000" in parity.summary


def test_bad_references_are_refused_with_one_line(models_dir: Path, tmp_path: Path, capsys):
    det = str(models_dir / "det_500m.onnx")
    with pytest.raises(SpecError, match="reference torch needs a facebatch artifact"):
        run_checks(models_dir / "det_500m.onnx", replace(OPTIONS, reference=torch_reference()))
    fixed_size = fix_onnx(models_dir / "mobilefacenet_128d.onnx", tmp_path / "mfn.onnx").path
    with pytest.raises(SpecError, match="fixed to height 112; the model under test takes 320"):
        run_checks(models_dir / "det_500m.onnx", replace(OPTIONS, reference=onnx_reference(fixed_size)))
    assert main(["verify", det, "--size", "320", "--reference", str(tmp_path / "none.onnx")]) == 2
    assert main(["verify", det, "--reference-weights", det]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]
    assert "--reference model file" in errors[0] and "does not exist" in errors[0]
    assert errors[1] == "facebatch: error: --reference-weights applies to a torch reference only"


@pytest.mark.slow  # exports a model from torch
def test_torch_reference_from_a_checkpoint_named_by_the_sidecar(tmp_path: Path):
    import torch

    from facebatch.exporter.arcface_export import ArcFaceExportOptions, export_arcface
    from facebatch.exporter.models.arcface import build_arcface, seeded_arcface

    checkpoint = tmp_path / "backbone.pth"
    torch.save(seeded_arcface(build_arcface("mbf", 128), seed=7).state_dict(), checkpoint)
    request = ArcFaceExportOptions(
        network="mbf", weights=checkpoint, embedding_size=128, out_dir=tmp_path, parity_batch_sizes=(1, 2)
    )
    artifact = export_arcface(request).onnx_path
    report = run_checks(artifact, VerifyOptions(batch_sizes=(1, 4), reference=torch_reference()))
    parity = check(report, 4)
    assert report.passed and "torch arcface_mbf (checkpoint backbone.pth)" in parity.summary, parity.summary
    assert [o["atol"] for r in parity.data["reports"] for o in r["outputs"]] == [
        1e-4,
        1e-4,
    ]  # the spec's, not a seeded gate
    torch.save(seeded_arcface(build_arcface("mbf", 128), seed=8).state_dict(), checkpoint)  # overwritten since export
    with pytest.raises(WeightsError, match="backbone.pth is not the file .* was exported from"):
        run_checks(artifact, VerifyOptions(batch_sizes=(1, 2), reference=torch_reference()))


@pytest.mark.slow  # exports a model from torch
def test_custom_config_detectors_need_their_config_for_torch(tmp_path: Path):
    config = tmp_path / "my_scrfd.py"
    config.write_text(CONFIG_TEXT)
    request = ScrfdExportOptions(config=config, height=160, width=160, out_dir=tmp_path, parity_batch_sizes=(1, 2))
    artifact = export_scrfd(request).onnx_path
    options = VerifyOptions(batch_sizes=(1, 2))
    with pytest.raises(SpecError, match="my_scrfd is not a released SCRFD config; pass reference_config"):
        run_checks(artifact, replace(options, reference=torch_reference()))
    report = run_checks(artifact, replace(options, reference=torch_reference(config=config)))
    assert check(report, 4).status == "pass", check(report, 4).summary
