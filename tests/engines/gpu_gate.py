"""The gate a GPU runner of reduced precision is held to in the gpu tests: the one 'facebatch build'
holds its engines to (check 4's comparison with the FP32 ONNX at the FP16 tolerances, boxes and
landmarks judged where a face can come from, decoded faces) and frames kept apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.configs.precision import Precision, independence_atol
from facebatch.engines.runners.base import Runner
from facebatch.verify.independence import verify_batch_independence
from facebatch.verify.reference import OnnxFileReference, compare_with_reference


def assert_passes_the_fp16_gate(model: ModelFile, runner: Runner, frames: np.ndarray, batches: Sequence[int]) -> None:
    """``runner`` (active) runs ``model``'s graph in FP16 or better: within FP16's tolerances of the FP32 ONNX
    on the CPU, and each frame of a batch as it is alone."""
    at_fp16 = replace(model, spec=model.spec.at_fp16(model.seeded))
    size = (int(frames.shape[2]), int(frames.shape[3]))
    result = compare_with_reference(at_fp16, runner, frames, OnnxFileReference(model.path, model.model), batches, size)
    failures = [r.summary() for r in result.reports if not r.passed] + [
        d.summary() for d in result.decoded if not d.passed
    ]
    assert not failures, failures
    independence = verify_batch_independence(
        runner, frames, sorted({1, 2, *batches}), independence_atol(Precision.FP16)
    )
    assert independence.passed, independence.error or independence.worst().max_abs_diff
