"""engines/bench/process_time.py: the whole-process run a pipeline bench times is the same work as the one it
times in-process."""

from __future__ import annotations

from pathlib import Path

from facebatch.cli import build_parser
from facebatch.engines.bench.process_time import embed_flags
from facebatch.engines.pipeline.options import PipelineOptions


def test_the_embed_flags_say_every_setting_the_bench_ran_with_bf16_included():
    settings = PipelineOptions(batch_size=4, embed_batch_size=16, read_workers=1, lanes=2, reduced_decode=True)
    flags = embed_flags(Path("d.onnx"), Path("e.onnx"), "openvino", settings, 2, (640, 640), bf16=True)
    args = build_parser().parse_args(["embed", "photos", "-o", "e.npz", *flags])
    assert (args.backend, args.precision, args.lanes, args.threads, args.reduced_decode) == (
        "openvino",
        "bf16",
        2,
        2,
        True,
    )
    assert "--precision" not in embed_flags(Path("d.onnx"), Path("e.onnx"), "ort-cpu", settings)  # FP32: the default


def test_auto_is_passed_on_so_the_process_chooses_per_model_what_the_bench_chose():
    settings = PipelineOptions()
    flags = embed_flags(Path("d.onnx"), Path("e.onnx"), "openvino", settings, precision="auto")
    assert build_parser().parse_args(["embed", "photos", "-o", "e.npz", *flags]).precision == "auto"
    assert "--precision" not in embed_flags(Path("d.onnx"), Path("e.onnx"), "openvino", settings, precision="int8")
