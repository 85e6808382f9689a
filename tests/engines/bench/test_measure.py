"""The measurement loop on a real onnxruntime runner: warm-up, the call budget, the samples
being the runner's own timings, and alternating blocks."""

import time

import numpy as np
import pytest
from onnx import helper

from facebatch.core.errors import SpecError
from facebatch.engines.bench.measure import BLOCK, MIN_CALLS, Budget, measure_alternating, measure_batch
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from tests.data.graphs import make_model

FRAMES = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)


def relu():
    return make_model(
        [helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", 3, 8, 8])], [("y", ["batch", 3, 8, 8])]
    )


def test_iters_gives_exactly_that_many_timed_calls_after_a_warm_up():
    with OnnxRuntimeRunner(relu()) as runner:
        began = time.perf_counter()
        timing = measure_batch(runner, FRAMES, 4, Budget(warmup=0.0, iters=5))
        wall = time.perf_counter() - began
    assert timing.batch == 4 and len(timing.latency.samples) == 5 and timing.warmup_calls == 1
    # the samples are the runner's own call times: each positive, together within the wall time of the same
    # measurement (a bound measured in this run, not a figure that holds only on an idle machine)
    assert all(s > 0 for s in timing.latency.samples) and sum(timing.latency.samples) <= wall
    assert timing.fps == pytest.approx(4 / timing.latency.p50)


def test_a_time_budget_still_takes_at_least_the_minimum_calls():
    with OnnxRuntimeRunner(relu()) as runner:
        timing = measure_batch(runner, FRAMES, 2, Budget(warmup=0.05, seconds=1e-6))
    assert len(timing.latency.samples) == MIN_CALLS and timing.warmup_calls >= 1


def test_alternating_blocks_measure_each_entry_alike():
    with OnnxRuntimeRunner(relu()) as a, OnnxRuntimeRunner(relu()) as b:
        first, second, third = measure_alternating(
            [(a, FRAMES, 1), (b, FRAMES, 1), (a, FRAMES, 4)], Budget(warmup=0.0, iters=3)
        )
    assert [t.batch for t in (first, second, third)] == [1, 1, 4]
    for timing in (first, second, third):
        assert len(timing.latency.samples) == BLOCK - 1  # one block: its first call untimed
        assert "alternating blocks" in timing.notes[0]


@pytest.mark.parametrize(
    "budget, field, message",
    [
        (dict(warmup=-1), "warmup", "warmup must be 0 or more seconds, got -1"),
        (dict(seconds=0), "seconds", "seconds must be more than 0, got 0"),
        (dict(iters=0), "iters", "iters must be at least 1, got 0"),
    ],
)
def test_a_bad_budget_names_its_field(budget: dict, field: str, message: str):
    with pytest.raises(SpecError, match=message) as refused:
        Budget(**budget)
    assert refused.value.field == field  # the command line names the flag: --warmup, --seconds, --iters


def test_a_batch_the_frames_cannot_fill_is_refused():
    with OnnxRuntimeRunner(relu()) as runner, pytest.raises(SpecError, match="4 frames cannot fill batch size 8"):
        measure_batch(runner, FRAMES, 8, Budget(iters=1))
