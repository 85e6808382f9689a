"""``bench_models``: every artifact on every backend at every batch size, in one run, with
the file an artifact replaces (``baseline``) and a published table (``published``) beside it.

Runners come from a factory the caller passes in: the ONNX backends are built by the one runner
factory (``engines/runners/factory.make_onnx_runner``); the torch backend needs the exporter to
rebuild the model, so the exporter's factory covers it (``facebatch.exporter.backends``).
Everything that can be refused is refused before the first measurement (``check_models``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.environment import environment
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import graph_input
from facebatch.core.progress import progress_bar
from facebatch.engines.bench.defaults import DEFAULT_BACKENDS, DEFAULT_BENCH_BATCH_SIZES
from facebatch.engines.bench.flops import ModelFlops, flops_per_frame, measured_peak
from facebatch.engines.bench.measure import Budget, measure_alternating, measure_batch
from facebatch.engines.bench.published import Comparison, PublishedTable, compare
from facebatch.engines.bench.report import Baseline, BenchReport, BenchRun
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.factory import RunnerFactory, RunnerOptions, check_backend


@dataclass
class ModelBenchOptions:
    """How ``bench_models`` times the models it is given (the bench use case's options for models,
    ``facebatch.workflows.bench.BenchOptions``, become these)."""

    backends: Sequence[str] = DEFAULT_BACKENDS
    batch_sizes: Sequence[int] = DEFAULT_BENCH_BATCH_SIZES
    budget: Budget = field(default_factory=Budget)
    size: tuple[int, int] | None = None  # input size for artifacts that take several (default: each one's own)
    photos: Sequence[Path] = ()  # letterboxed (detectors) or centre-cropped (embedders); seeded frames fill the rest
    seed: int = 0
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    baseline: Path | None = None  # the batch-1 file an artifact replaces, run at batch 1 beside it
    published: PublishedTable | None = None

    def to_dict(self) -> dict:
        b = self.budget
        return {
            "backends": list(self.backends),
            "batch_sizes": list(self.batch_sizes),
            "size": list(self.size) if self.size else None,
            "budget": {"warmup": b.warmup, "seconds": b.seconds, "iters": b.iters},
            "photos": [str(p) for p in self.photos],
            "seed": self.seed,
            "threads": self.runner.thread_count,
            "allow_fallback": self.runner.allow_fallback,
            "baseline": str(self.baseline) if self.baseline else None,
            "published": str(self.published.path) if self.published else None,
        }


def backend_family(provider: str) -> str:
    """What ran, in the words a published table uses (its ``backend``)."""
    for marker, family in (
        ("Tensorrt", "TensorRT (onnxruntime EP)"),
        ("CUDAExecutionProvider", "onnxruntime CUDA"),
        ("CPUExecutionProvider", "onnxruntime CPU"),
        ("OpenVINO", "OpenVINO"),
        ("torch-cuda", "torch CUDA"),
        ("torch-cpu", "torch CPU"),
    ):
        if marker in provider:
            return family
    return provider


def runs_on_gpu(provider: str) -> bool:
    # onnxruntime's CUDA/TensorRT providers, the TensorRT runner ("TensorRT 11.4 on NVIDIA H200 …"), torch-cuda
    return any(marker in provider.lower() for marker in ("cuda", "tensorrt"))


def hardware(provider: str, env: dict) -> str:
    gpus = env.get("gpus") or []
    if runs_on_gpu(provider):
        return gpus[0]["name"] if gpus else "a GPU"
    return str(env["cpu"])


def check_batch_sizes(model: ModelFile, batch_sizes: Sequence[int]) -> None:
    """Inside the artifact's profile; a graph whose batch is fixed runs at that batch only."""
    for batch in batch_sizes:
        model.spec.check_batch(batch)
    _, dims = graph_input(model.model, SpecError)
    fixed = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
    if fixed is not None and any(b != fixed for b in batch_sizes):
        raise SpecError(
            f"{model.path.name} takes batch {fixed} only (its batch axis is fixed): bench it with batch_sizes {fixed}, "
            f"or repair its batch axis first with fix (into {model.path.stem}_batch.onnx)",
            field="batch_sizes",
        )


def _baselines(models: Sequence[ModelFile], path: Path, size: tuple[int, int] | None) -> dict[Path, ModelFile]:
    """The baseline file read at each same-family artifact's size, by artifact path."""
    embedder = read_model_file(path).family.is_embedder
    pairs = {}
    for model in models:
        if model.family.is_embedder == embedder:
            baseline = read_model_file(path, size=model.checked_size(size))
            check_batch_sizes(baseline, (1,))
            pairs[model.path] = baseline
    if not pairs:
        kind = "an embedder" if embedder else "a detector"
        raise SpecError(f"baseline {Path(path).name} is {kind}; none of the artifacts is", field="baseline")
    return pairs


def check_models(models: Sequence[ModelFile], options: ModelBenchOptions) -> dict[Path, ModelFile]:
    """Every refusal before the first measurement: no artifact, a backend this machine cannot run, a batch
    size outside an artifact's profile, a baseline that cannot run beside one. Returns the baseline read
    at each same-family artifact's size, by artifact path (empty without a baseline)."""
    if not models:
        raise SpecError("name at least one artifact to benchmark", field="models")
    for backend in options.backends:
        if backend != "torch":  # the torch runner is the exporter's; it says itself what it cannot rebuild
            check_backend(backend, options.runner)
    for model in models:
        model.checked_size(options.size)
    for model in models:
        check_batch_sizes(model, options.batch_sizes)
    if options.baseline is None:
        return {}
    if 1 not in options.batch_sizes:
        raise SpecError(
            "baseline compares at batch 1 (the file it names cannot batch): include 1 in the batch sizes",
            field="baseline",
        )
    return _baselines(models, options.baseline, options.size)


def bench_models(models: Sequence[ModelFile], options: ModelBenchOptions, make_runner: RunnerFactory) -> BenchReport:
    started = time.perf_counter()
    baselines = check_models(models, options)
    baseline_backends = [b for b in options.backends if b != "torch"]  # a foreign file has no torch model
    env = environment()
    report = BenchReport(options=options.to_dict(), environment=env, peak=measured_peak(options.runner.thread_count))
    cells = len(models) * len(options.backends) * len(options.batch_sizes) + len(baselines) * len(baseline_backends)
    with progress_bar(cells, "bench") as advance:
        for model in models:
            size = model.checked_size(options.size)
            frames = model_frames(model, size, max(options.batch_sizes), options.photos, options.seed)
            counted = flops_per_frame(model.path, size)
            for backend in options.backends:
                with make_runner(backend, model, size, options.runner) as runner:
                    run = _new_run(model, size, backend, runner, env, counted)
                    for batch in options.batch_sizes:
                        run.timings.append(measure_batch(runner, frames, batch, options.budget))
                        advance(f"{model.path.name} {backend} batch {batch}: {run.timings[-1].fps:.1f} FPS")
                report.runs.append(run)
            baseline = baselines.get(model.path)
            if baseline is None:
                continue
            baseline_frames = model_frames(baseline, size, 1, options.photos, options.seed)
            for backend in baseline_backends:
                best = next(r for r in report.runs if r.artifact == model.path.name and r.backend == backend).best()
                pair = (model, frames, baseline, baseline_frames)
                done = _against_baseline(pair, size, backend, best.batch, options, make_runner)
                report.baselines.append(done)
                advance(
                    f"{baseline.path.name} {backend} batch 1: {done.baseline_timing.fps:.1f} FPS "
                    f"(ours {done.artifact_batch1.fps:.1f})"
                )
    if options.published is not None:
        report.comparisons = [_compared(options.published, run) for run in report.runs]
    report.seconds = time.perf_counter() - started
    return report


def _new_run(
    model: ModelFile, size: tuple[int, int], backend: str, runner: Runner, env: dict, counted: ModelFlops | None
) -> BenchRun:
    """One artifact on one backend, before its timings: what really runs, where, and its FLOPs."""
    return BenchRun(
        model.path.name,
        model.spec.name,
        size,
        backend,
        runner.provider,
        runner.precision,
        runner.threads,
        hardware(runner.provider, env),
        flops_per_frame=counted.flops if counted else None,
        on_cpu=not runs_on_gpu(runner.provider),
        fp32_flops_per_frame=counted.kept_fp32 if counted else 0.0,
    )


def _against_baseline(
    pair: tuple[ModelFile, np.ndarray, ModelFile, np.ndarray],
    size: tuple[int, int],
    backend: str,
    best: int,
    options: ModelBenchOptions,
    make_runner: RunnerFactory,
) -> Baseline:
    """The artifact (at batch 1 and at its fastest batch) against the batch-1 file it replaces, on one
    backend, in alternating blocks so that a machine whose speed drifts slows both alike."""
    model, frames, baseline, baseline_frames = pair
    taking_turns = replace(options.runner, spin_wait=False)  # two spinning thread pools would slow each other
    with (
        make_runner(backend, model, size, taking_turns) as ours,
        make_runner(backend, baseline, size, taking_turns) as theirs,
    ):
        entries = [(theirs, baseline_frames, 1), (ours, frames, 1)] + ([(ours, frames, best)] if best != 1 else [])
        theirs_1, ours_1, *rest = measure_alternating(entries, options.budget)
    return Baseline(baseline.path.name, model.path.name, backend, theirs_1, ours_1, rest[0] if rest else ours_1)


def _compared(table: PublishedTable, run: BenchRun) -> Comparison:
    """One run set beside the published table's entry for its model and size."""
    return compare(
        table,
        run.artifact,
        run.model,
        run.input_size,
        run.backend,
        backend_family(run.provider),
        run.hardware,
        run.precision,
        run.fps_by_batch(),
    )
