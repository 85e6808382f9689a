"""``facebatch triton`` and ``facebatch serve`` from the command line: a repository written
and shown, and every refusal one line with a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.errors import SpecError
from facebatch.engines.triton.defaults import MANIFEST
from facebatch.engines.triton.install import find_tritonserver


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facebatch: error: "), err
    return err[0]


def test_triton_writes_a_repository_and_refuses_to_overwrite_it(small_detector: Path, tmp_path: Path, capsys):
    out = tmp_path / "repo"
    assert main(["triton", str(small_detector), "--out", str(out), "--device", "cpu", "--max-batch", "8"]) == 0
    shown = capsys.readouterr().out
    assert small_detector.stem in shown and "onnxruntime_onnx (cpu)" in shown and "facebatch serve" in shown
    assert (out / small_detector.stem / "config.pbtxt").is_file() and (out / MANIFEST).is_file()
    assert main(["triton", str(small_detector), "--out", str(out)]) == 2
    assert "exists and is not empty; pass --force" in error_line(capsys)
    assert main(["triton", str(small_detector), "--out", str(out), "--force", "--instances", "2"]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--runtime", "tensorrt", "--device", "cpu"], "TensorRT engines run on a GPU only"),
        (["--pipeline"], "--pipeline needs exactly one embedder"),
        (["--instances", "0"], "--instances must be at least 1"),
    ],
)
def test_triton_refusals_are_one_line(small_detector: Path, tmp_path: Path, capsys, extra, message):
    assert main(["triton", str(small_detector), "--out", str(tmp_path / "repo"), *extra]) == 2
    assert message in error_line(capsys)
    assert not (tmp_path / "repo").exists()


def test_a_fixed_batch_file_points_to_fix(models_dir: Path, tmp_path: Path, capsys):
    assert main(["triton", str(models_dir / "mobilefacenet_128d.onnx"), "--out", str(tmp_path / "repo")]) == 2
    assert (
        "has a fixed batch axis (1)" in (line := error_line(capsys))
        and "repair it with fix (graph surgery that makes the batch axis symbolic: mobilefacenet_128d_batch.onnx)"
        in line
    )


def test_serve_refuses_a_missing_repository_and_a_busy_port(small_detector: Path, tmp_path: Path, capsys):
    assert main(["serve", str(tmp_path / "none")]) == 2
    assert "repository " in (line := error_line(capsys)) and "does not exist; write one first" in line
    out = tmp_path / "repo"
    assert main(["triton", str(small_detector), "--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert main(["serve", str(out), "--http-port", str(busy), "--python-env", str(tmp_path)]) == 2
        assert "is not a python environment" in error_line(capsys)
        try:
            install = find_tritonserver()
        except SpecError as exc:
            pytest.skip(str(exc))
        if install.bundled:  # an onnxruntime model is not for nvidia-pytriton's server
            assert main(["serve", str(out), "--http-port", str(busy)]) == 2
            assert "has the python backend only" in error_line(capsys)
        python = tmp_path / "python_repo"
        assert main(["triton", str(small_detector), "--out", str(python), "--runtime", "python"]) == 0
        capsys.readouterr()
        assert main(["serve", str(python), "--http-port", str(busy), "--grpc-port", "0"]) == 2
        assert "is not a port number" in error_line(capsys)
        assert main(["serve", str(python), "--http-port", str(busy)]) == 2
        assert f"port {busy} on 127.0.0.1 is in use; pass another --http-port" in error_line(capsys)


def test_bench_triton_needs_a_model_and_a_reachable_server(capsys):
    assert main(["bench", "--triton", "localhost:1"]) == 2
    assert "--model is missing: name the served model to time" in error_line(capsys)
    pytest.importorskip("tritonclient", reason="the serve extra talks to Triton")
    assert main(["bench", "--triton", "127.0.0.1:1", "--model", "face_pipeline", "--seconds", "1"]) == 1
    assert "cannot reach Triton at http://127.0.0.1:1" in error_line(capsys)
