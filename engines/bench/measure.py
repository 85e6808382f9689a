"""The measurement loop for one runner and one batch size: fixed distinct inputs, a warm-up,
then timed calls. Each call's time is the runner's own (``last_inference_seconds``: the
runtime call alone, output copies included, which on a GPU waits for the device)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facebatch.core.errors import SpecError
from facebatch.engines.bench.timing import BatchTiming, Latency
from facebatch.engines.runners.base import Runner

MIN_CALLS = 3  # fewer timed calls than this make no median worth printing
BLOCK = 4  # calls per runner per turn when runners are measured alternately


@dataclass(frozen=True)
class Budget:
    """How long to measure: ``iters`` timed calls, or calls for ``seconds`` (at least MIN_CALLS),
    after ``warmup`` seconds of untimed calls (at least one)."""

    warmup: float = 1.0
    seconds: float = 3.0
    iters: int | None = None

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise SpecError(f"warmup must be 0 or more seconds, got {self.warmup:g}", field="warmup")
        if self.seconds <= 0:
            raise SpecError(f"seconds must be more than 0, got {self.seconds:g}", field="seconds")
        if self.iters is not None and self.iters < 1:
            raise SpecError(f"iters must be at least 1, got {self.iters}", field="iters")


def _checked_feed(runner: Runner, frames: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` of ``frames`` as the runner's (one) input, run once: the feed is
    checked then, and only then (timed calls skip the check), and that call warms up."""
    if batch > len(frames):
        raise SpecError(f"{len(frames)} frames cannot fill batch size {batch}")
    (source,) = runner.inputs
    feed = {source.name: np.ascontiguousarray(frames[:batch])}
    runner.infer(feed)
    return feed


def measure_batch(runner: Runner, frames: np.ndarray, batch: int, budget: Budget) -> BatchTiming:
    """Time ``runner`` (active, one input) on the first ``batch`` of ``frames``."""
    feed = _checked_feed(runner, frames, batch)
    warmup_calls = 1
    start = time.perf_counter()
    while time.perf_counter() - start < budget.warmup:
        runner.infer(feed, check_inputs=False)
        warmup_calls += 1
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        runner.infer(feed, check_inputs=False)
        assert runner.last_inference_seconds is not None
        samples.append(runner.last_inference_seconds)
        if budget.iters is not None:
            if len(samples) >= budget.iters:
                break
        elif len(samples) >= MIN_CALLS and time.perf_counter() - start >= budget.seconds:
            break
    return BatchTiming(batch, Latency(tuple(samples)), warmup_calls)


def measure_alternating(entries: Sequence[tuple[Runner, np.ndarray, int]], budget: Budget) -> list[BatchTiming]:
    """Several (runner, frames, batch size) measured in alternating blocks (a×4, b×4, a×4, …) so
    that a machine whose speed drifts during the run slows them alike: how a re-export is set
    against the file it replaces. Blocks, not single calls: a runtime's thread pool keeps
    spinning for a moment after each call, and would slow the other runner's next call; the
    first call of each block is that re-warm and is not timed."""
    feeds = [(runner, _checked_feed(runner, frames, batch)) for runner, frames, batch in entries]
    warmups = [1] * len(feeds)
    start = time.perf_counter()
    while time.perf_counter() - start < budget.warmup:
        for i, (runner, feed) in enumerate(feeds):
            runner.infer(feed, check_inputs=False)
            warmups[i] += 1
    samples: list[list[float]] = [[] for _ in feeds]
    wanted = budget.iters or MIN_CALLS
    start = time.perf_counter()
    while len(samples[0]) < wanted or (budget.iters is None and time.perf_counter() - start < budget.seconds):
        for i, (runner, feed) in enumerate(feeds):
            runner.infer(feed, check_inputs=False)  # the block's re-warm
            for _ in range(BLOCK - 1):
                runner.infer(feed, check_inputs=False)
                assert runner.last_inference_seconds is not None
                samples[i].append(runner.last_inference_seconds)
    note = f"measured in alternating blocks of {BLOCK} calls (the first of each untimed) with the other runner of its comparison"
    note += "; onnxruntime's spin-wait off for both"
    return [BatchTiming(e[2], Latency(tuple(s)), w, [note]) for e, s, w in zip(entries, samples, warmups, strict=False)]
