"""prove-bf16 and ``--precision bf16`` both ways — the command line and ``facebatch.prove_bf16`` /
``facebatch.detect``: the same verdict recorded, the same refusals (an INT8 file, a model without a proof, another
backend)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx

from facebatch import api
from facebatch.cli import main
from facebatch.configs.model_file import read_model_file
from facebatch.workflows.bf16_record import bf16_record_path, read_record
from tests.facebatch.parity.both_ways import assert_same_refusal
from tests.facebatch.parity.test_convert import photo_folder
from tests.facebatch.workflows.test_bf16_proof import PROOF_SIZE, needs_bf16


@needs_bf16
def test_the_same_verdict_is_recorded_and_honoured_both_ways(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    images = photo_folder(photos, tmp_path / "photos", count=6)
    cli, ours = (Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / f"{w}.onnx")) for w in ("cli", "api"))
    size = ["--size", "160"]
    verdict = tmp_path / "verdict.json"
    assert main(["prove-bf16", str(cli), "--images", str(images), "--threads", "1", *size, "--json", str(verdict)]) == 0
    printed = json.loads(verdict.read_text())
    result = api.prove_bf16(ours, photos=[images], size=PROOF_SIZE, threads=1)
    assert result.passed and printed["passed"]
    recorded = [read_record(bf16_record_path(p)) for p in (cli, ours)]
    assert [r["figures"] for r in recorded] == [result.accuracy.to_dict()] * 2
    photo = str(images / sorted(p.name for p in images.iterdir())[0])
    argv = ["detect", photo, "--detector", str(cli), "--backend", "openvino", "--precision", "bf16", *size]
    assert main([*argv, "--json", str(tmp_path / "faces.json")]) == 0
    at_size = read_model_file(cli, size=PROOF_SIZE)
    faces = api.detect([photo], at_size, backend="openvino", precision="bf16").faces
    assert json.loads((tmp_path / "faces.json").read_text())["faces"] == faces > 0
    refused = ["detect", photo, "--detector", str(cli), "--backend", "openvino", "--precision", "bf16"]  # 640
    error = assert_same_refusal(refused, lambda: api.detect([photo], cli, backend="openvino", precision="bf16"), capsys)
    assert "was proven in BF16 at 160x160, not at 640x640" in str(error)


def test_bf16_refusals_are_the_same_both_ways(models_dir: Path, photos: list[Path], tmp_path: Path, capsys):
    """On any CPU: without BF16 the refusal names the CPU, with it the missing proof; an INT8 file is never proven."""
    detector = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    photo = str(photos[0])
    argv = ["detect", photo, "--detector", str(detector), "--backend", "openvino", "--precision", "bf16"]
    error = assert_same_refusal(
        argv, lambda: api.detect([photo], detector, backend="openvino", precision="bf16"), capsys
    )
    assert error.field == "precision" and "cannot run in precision bf16" in str(error)
    loaded = onnx.load(str(detector))
    loaded.metadata_props.add(key="precision", value="int8")
    int8 = tmp_path / "det_500m_int8.onnx"
    onnx.save(loaded, str(int8))
    error = assert_same_refusal(
        ["prove-bf16", str(int8), "--images", photo], lambda: api.prove_bf16(int8, photos=[photo]), capsys
    )
    assert error.field == "model" and not bf16_record_path(int8).exists()
