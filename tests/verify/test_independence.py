"""Check 1 on hand-built graphs: each frame alone against the same frame inside a batch, the
worst difference and where it is, layout problems instead of values where dim 0 is not the
batch, a batch the graph refuses, and the observer that check 3 rides on."""

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.verify.independence import verify_batch_independence
from facebatch.verify.lint import relaxed_batch
from tests.data.graphs import batch_mean_leak, folded_head, make_model

FRAMES = np.random.default_rng(2).standard_normal((4, 3, 4, 4)).astype(np.float32)


def check(model: onnx.ModelProto, frames: np.ndarray = FRAMES, sizes=(1, 2, 4), on_batch=None):
    with OnnxRuntimeRunner(model) as runner:
        return verify_batch_independence(runner, frames, sizes, on_batch=on_batch)


def test_a_per_frame_graph_passes_and_every_batch_is_recorded():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", 3, 4, 4])], [("y", ["batch", 3, 4, 4])]
    )
    seen = []
    report = check(model, on_batch=lambda n, alone, batched: seen.append((n, len(alone), batched["y"].shape)))
    assert report.passed and [d.batch for d in report.diffs] == [1, 2, 4] and report.worst().max_abs_diff == 0.0
    assert seen == [(1, 4, (1, 3, 4, 4)), (2, 4, (2, 3, 4, 4)), (4, 4, (4, 3, 4, 4))]


def test_a_leak_is_reported_with_the_frame_and_index(tmp_path: Path):
    model = onnx.load(str(batch_mean_leak(tmp_path / "leak.onnx")))
    frames = np.random.default_rng(3).standard_normal((3, 3, 112, 112)).astype(np.float32)
    report = check(model, frames, sizes=(1, 3))
    assert not report.passed
    (failure,) = report.value_failures()
    assert failure.batch == 3 and failure.max_abs_diff > 1e-4 and failure.frame in (0, 1, 2) and len(failure.index) == 3
    assert next(d for d in report.diffs if d.batch == 1).passed(report.atol)  # a batch of one cannot leak


def test_folded_rows_are_a_layout_problem_not_a_value():
    report = check(relaxed_batch(folded_head(batch=1)), sizes=(1, 2))
    problems = {d.batch: d.layout_problem for d in report.layout_failures()}
    assert problems[1] == "dim 0 is 32, expected the batch size 1 (shape [32, 2])"  # even one frame comes out as rows
    assert problems[2] == "dim 0 is 64 = 2 × 32: the batch is folded into the rows ([N·K, C])"
    assert not report.value_failures() and not report.passed


def test_a_batch_the_graph_cannot_run_is_an_error_not_a_pass():
    pinned = make_model(
        [helper.make_node("Reshape", ["x", "s"], ["y"])],
        [("x", ["batch", 3, 4, 4])],
        [("y", [1, 48])],
        {"s": np.array([1, 48], np.int64)},
    )  # the input takes any batch; the Reshape only one frame
    report = check(pinned, sizes=(1, 2))
    assert (
        report.error is not None
        and report.error.startswith("batch 2 does not run: onnxruntime cannot run")
        and not report.passed
    )
