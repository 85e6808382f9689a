"""Published tables: the shipped one reads, every schema problem is one line naming where,
and a comparison says when hardware, precision or backend differ."""

from pathlib import Path

import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.bench.published import compare, load_published, shipped_tables

GOOD = """source: https://example.org/card
hardware: AMD EPYC
precision: fp32
backend: onnxruntime CPU
models:
  - model: scrfd_500m_bnkps
    input_size: [64, 64]
    results:
      - {batch: 1, fps: 100, ms_per_frame: 10}
      - {batch: 4, fps: 200, ms_per_frame: 5}
"""


def test_the_shipped_table_holds_the_model_cards_figures():
    (table,) = [load_published(p) for p in shipped_tables() if p.name == "alonsorobots_rtx5090.yaml"]
    assert load_published("alonsorobots_rtx5090") == table  # shipped tables also go by name
    assert (table.hardware, table.precision, table.backend) == ("NVIDIA GeForce RTX 5090", "fp16", "tensorrt")
    assert table.source == "https://huggingface.co/alonsorobots/scrfd_320_batched"
    scrfd, arcface = table.entry("scrfd_10g_bnkps", (320, 320)), table.entry("arcface_r50", (112, 112))
    assert [(r.batch, r.fps, r.ms_per_frame) for r in scrfd.results] == [(1, 867, 1.15), (16, 5498, 0.18)]
    assert [(r.batch, r.fps, r.ms_per_frame) for r in arcface.results] == [(1, 292, 3.4), (16, 3029, 0.33)]
    assert table.entry("scrfd_10g_bnkps", (640, 640)) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: [1, 2\n", "is not valid YAML at line"),
        ("- a\n", "must be a mapping with backend, hardware, models, precision, source"),
        (GOOD.replace("backend: onnxruntime CPU\n", ""), "lacks backend"),
        (GOOD.replace("hardware:", "gpu:"), "lacks hardware and has unknown keys gpu"),
        (GOOD.replace("input_size: [64, 64]", "input_size: 64"), r"models\[0\].input_size must be \[height, width\]"),
        (GOOD.replace("fps: 200", "fps: fast"), r"models\[0\].results\[1\].fps must be a positive number, got 'fast'"),
        (GOOD.replace("{batch: 1,", "{batch: 0,"), r"results\[0\].batch must be a positive integer"),
        (GOOD.replace("precision: fp32", "precision: ''"), "precision must be a non-empty string"),
    ],
)
def test_schema_errors_are_one_line_naming_where(tmp_path: Path, text: str, message: str):
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(SpecError, match=message):
        load_published(tmp_path / "t.yaml")


def test_a_comparison_gives_ratios_and_says_what_differs(tmp_path: Path):
    (tmp_path / "t.yaml").write_text(GOOD)
    table = load_published(tmp_path / "t.yaml")
    same = compare(
        table,
        "a.onnx",
        "scrfd_500m_bnkps",
        (64, 64),
        "ort-cpu",
        "onnxruntime CPU",
        "AMD EPYC",
        "fp32",
        {1: 50.0, 2: 80.0},
    )
    assert [(r.batch, r.measured_fps, r.ratio) for r in same.rows] == [(1, 50.0, 0.5), (4, None, None)]
    assert same.differences == [] and "compares like with like" in same.lines()[-1]
    assert "batch 4: measured not measured, published 200 FPS" in "\n".join(same.lines())
    other = compare(
        table, "a.onnx", "scrfd_500m_bnkps", (64, 64), "openvino", "OpenVINO", "Intel Xeon", "fp32", {1: 50.0}
    )
    assert other.differences == ["hardware (Intel Xeon vs AMD EPYC)", "backend (OpenVINO vs onnxruntime CPU)"]
    assert other.lines()[-1].endswith("differ: the ratio is for orientation only")
    missing = compare(
        table, "a.onnx", "scrfd_500m_bnkps", (320, 320), "ort-cpu", "onnxruntime CPU", "AMD EPYC", "fp32", {1: 50.0}
    )
    assert missing.lines() == ["a.onnx on ort-cpu: t.yaml has no figures for scrfd_500m_bnkps at 320x320"]
    with pytest.raises(SpecError, match="does not exist .*alonsorobots_rtx5090.yaml"):
        load_published(tmp_path / "none.yaml")
