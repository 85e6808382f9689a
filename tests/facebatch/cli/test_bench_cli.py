"""``facebatch bench`` end to end on the CPU backends, its reports and plot, and bad input:
one line, exit 2, no half-written report."""

import json
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.engines.bench.published import shipped_tables


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]


def test_a_run_writes_json_markdown_and_plot_and_prints_the_table(
    small_detector: Path, models_dir: Path, tmp_path: Path, capsys
):
    argv = [
        "bench",
        str(small_detector),
        "--backend",
        "ort-cpu,openvino",
        "--batch-sizes",
        "1,2",
        "--warmup",
        "0",
        "--iters",
        "3",
        "--threads",
        "1",
        "--baseline",
        str(models_dir / "det_500m.onnx"),
        "--compare",
        str(shipped_tables()[0]),
        "--json",
        str(tmp_path / "b.json"),
        "--markdown",
        str(tmp_path / "b.md"),
        "--plot",
        str(tmp_path / "b.png"),
    ]
    assert main(argv) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "ort-cpu FPS" in shown
        and "openvino / ort-cpu" in shown
        and "vs det_500m.onnx on ort-cpu: the original runs" in shown
        and "in blocks alternating with it, ours is" in shown
    )
    assert "alonsorobots_rtx5090.yaml has no figures for scrfd_500m_bnkps at 64x64" in shown
    data = json.loads((tmp_path / "b.json").read_text())
    assert [len(t["samples_s"]) for run in data["runs"] for t in run["timings"]] == [3, 3, 3, 3]
    assert data["command"] == "facebatch " + " ".join(argv) and data["options"]["budget"] == {
        "warmup": 0.0,
        "seconds": 3.0,
        "iters": 3,
    }
    assert len(data["baselines"]) == 2 and data["baselines"][0]["baseline"] == "det_500m.onnx"
    markdown = (tmp_path / "b.md").read_text()
    assert (
        "| Batch | FPS | ms/frame |" in markdown
        and "## Against the files they replace" in markdown
        and "## Environment" in markdown
    )
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_foreign_embedder_is_benchable_with_the_flags_verify_takes(models_dir: Path, capsys):
    argv = [
        "bench",
        str(models_dir / "mobilefacenet_128d.onnx"),
        "--batch-sizes",
        "1",
        "--iters",
        "3",
        "--warmup",
        "0",
        "--color-order",
        "RGB",
    ]
    assert main(argv) == 0
    assert "mobilefacenet_128d.onnx (mobilefacenet_128d, 112x112)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--backend", "ort-gpu"],
            "'ort-gpu'; did you mean ort-cpu? known: ort-cpu, ort-cuda, ort-trt, openvino, torch, trt",
        ),
        (["--compare", "{tmp}/bad.yaml"], "bad.yaml lacks backend, hardware, models, precision, source"),
        (["--plot", "/proc/facebatch-nope/p.png"], "pass a writable --plot"),
        (["--batch-sizes", "1,48"], "batch size 48 is outside scrfd_500m_bnkps's profile 1–32"),
        (["--mean", "0"], "carries its own facebatch spec; drop --embedder-spec"),
        (["--iters", "0"], "--iters must be at least 1, got 0"),
        (["--baseline", "{tmp}/bad.yaml", "--batch-sizes", "2"], "--baseline compares at batch 1"),
        (
            ["--images", "{tmp}/empty"],
            "--images: no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {tmp}/empty or",
        ),
        (["--pipeline", "{tmp}/empty"], "--pipeline times the detector and embedder it is given, not artifacts"),
        (["--model", "face_pipeline"], "--triton is missing: the server that serves face_pipeline"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_no_report(
    extra, message, small_detector: Path, tmp_path: Path, capsys
):
    (tmp_path / "bad.yaml").write_text("note: not a table\n")
    (tmp_path / "empty").mkdir()
    argv = [
        "bench",
        str(small_detector),
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
        str(tmp_path / "r.json"),
        *[a.format(tmp=tmp_path) for a in extra],
    ]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message.format(tmp=tmp_path) in errors[0], errors
    assert not (tmp_path / "r.json").exists()
