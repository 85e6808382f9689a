"""Backends by name: known names, what is missing said up front, the TensorRT profile from
the spec, explicit threads."""

from pathlib import Path

import pytest

from facebatch.configs.scrfd import released_head_layout, scrfd_spec
from facebatch.engines.runners.backends import BACKENDS, parse_backends
from facebatch.engines.runners.registry import RunnerOptions, _trt_options, check_backend, onnx_runner
from facebatch.environment import physical_cores
from facebatch.errors import SpecError


def test_backend_names_are_checked_and_deduplicated():
    assert parse_backends("ort-cpu, openvino,ort-cpu") == ("ort-cpu", "openvino")
    with pytest.raises(SpecError, match="unknown backend 'openvno'; did you mean openvino\\?"):
        parse_backends("openvno")
    assert set(BACKENDS) == {"ort-cpu", "ort-cuda", "ort-trt", "openvino", "torch", "trt"}


def test_the_tensorrt_profile_comes_from_the_spec():
    spec = scrfd_spec("scrfd_10g_bnkps", released_head_layout(True), 320, 320, dynamic_size=True)
    options = _trt_options(spec, (320, 480), RunnerOptions(trt_cache=Path("/tmp/cache")))
    assert options["trt_profile_min_shapes"] == "input.1:1x3x320x480"
    assert (
        options["trt_profile_opt_shapes"] == "input.1:16x3x320x480"
        and options["trt_profile_max_shapes"] == "input.1:32x3x320x480"
    )
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_path"] == "/tmp/cache"


def test_what_cannot_run_is_refused_before_any_work(small_detector: Path):
    with pytest.raises(SpecError, match="ort-trt backend needs onnxruntime's TensorrtExecutionProvider"):
        check_backend("ort-trt", RunnerOptions())
    check_backend("ort-trt", RunnerOptions(allow_fallback=True))  # allowed: the runner says what really ran
    with pytest.raises(SpecError, match="does not run ONNX files directly"):
        onnx_runner("torch", small_detector, None, (64, 64), RunnerOptions())  # type: ignore[arg-type]
    assert RunnerOptions().thread_count == physical_cores() and RunnerOptions(threads=3).thread_count == 3
