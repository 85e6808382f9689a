"""The exporter's runner factory is the one runner factory extended with torch: every ONNX backend
comes from ``make_onnx_runner`` unchanged, torch rebuilds the artifact's model and computes what
the ONNX file computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facebatch.configs.model_file import read_model_file
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.availability import Runtimes
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.exporter.backends import make_runner


def test_every_onnx_backend_is_the_one_factorys(small_detector: Path):
    model = read_model_file(small_detector)
    options = RunnerOptions(threads=1, allow_fallback=True, runtimes=Runtimes.cpu_only())
    for backend in ("ort-cpu", "ort-cuda"):
        ours, factorys = (
            make_runner(backend, model, (64, 64), options),
            make_onnx_runner(backend, model, (64, 64), options),
        )
        assert type(ours) is type(factorys) is OnnxRuntimeRunner
        assert (ours.providers, ours.intra_op_threads, ours.spin_wait) == (
            factorys.providers,
            factorys.intra_op_threads,
            factorys.spin_wait,
        )


def test_torch_rebuilds_the_model_and_computes_what_the_onnx_file_computes(small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, (64, 64), 2, photos[:2])
    options = RunnerOptions(threads=1)
    with (
        make_runner("torch", model, (64, 64), options) as rebuilt,
        make_runner("ort-cpu", model, (64, 64), options) as onnx,
    ):
        assert rebuilt.provider.startswith("torch-") and not isinstance(rebuilt, OnnxRuntimeRunner)
        ours, reference = rebuilt.infer({"input.1": frames}), onnx.infer({"input.1": frames})
    assert ours.keys() == reference.keys()
    for name in reference:
        assert np.max(np.abs(ours[name] - reference[name])) < 1e-3, name
