"""``bench_pipeline``: the batched face pipeline against the per-image loop over the same
models, and against insightface's ``FaceAnalysis`` on the same ONNX files, in one run.

Each run first makes one untimed pass over the folder (its results are what the runs are
compared on), then the runs take turns, ``rounds`` timed passes each, so that a machine whose
speed drifts slows them alike; speeds come from each run's median pass. The models alone are
timed on the same runners, at the batch sizes the pipeline gives them and at batch 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.core.environment import environment
from facebatch.core.errors import SpecError
from facebatch.core.progress import progress_bar
from facebatch.engines.bench.defaults import DEFAULT_PIPELINE_ROUNDS, DEFAULT_PROCESS_RUNS
from facebatch.engines.bench.flops import flops_per_frame, measured_bf16_gemm, measured_peak
from facebatch.engines.bench.insightface_peer import (
    COMPARE_HINT,
    InsightFacePeer,
    insightface_available,
    insightface_version,
)
from facebatch.engines.bench.measure import Budget, measure_batch
from facebatch.engines.bench.pipeline_report import INSIGHTFACE, LOOP, OURS, Contender, ModelOnly, PipelineBenchReport
from facebatch.engines.bench.process_time import ProcessSides, measure_processes
from facebatch.engines.evaluation.agreement import compare_runs, labelled_faces, recall
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.image_faces import ImageFaces, StageTimes
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineSettings
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.factory import RunnerOptions

# batched against one-by-one on the same runtime: only the runtime's own batch-size noise (~1e-5) apart
SAME_RUNTIME_PIXELS = 0.01
SAME_RUNTIME_COSINE = 0.99999


@dataclass
class PipelineBenchOptions:
    backend: str = "ort-cpu"
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    rounds: int = DEFAULT_PIPELINE_ROUNDS
    runner: RunnerOptions = field(default_factory=lambda: RunnerOptions(spin_wait=False))
    insightface: bool | None = None  # None: when it is installed
    model_budget: Budget = field(default_factory=lambda: Budget(warmup=0.5, seconds=1.5))
    detector_size: tuple[int, int] | None = None
    # the files insightface runs (None: ours): the FP32 sources when ours are their INT8 twins
    peer_detector: Path | None = None
    peer_embedder: Path | None = None
    process_repeats: int = DEFAULT_PROCESS_RUNS  # whole-process runs of each side (0: none)
    process_flags: tuple[str, ...] = ()  # facebatch embed's flags for the whole-process runs

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise SpecError(f"rounds must be at least 1, got {self.rounds}", field="rounds")

    def to_dict(self) -> dict:
        s = self.settings
        return {
            "backend": self.backend,
            "rounds": self.rounds,
            "threads": self.runner.thread_count,
            "spin_wait": self.runner.spin_wait,
            "batch_size": s.batch_size,
            "embed_batch_size": s.embed_batch_size,
            "read_workers": s.read_workers,
            "lanes": s.lanes,
            "reduced_decode": s.reduced_decode,
            "det_thresh": s.det_thresh,
            "nms_thresh": s.nms_thresh,
            "insightface": self.insightface,
            "peer_detector": str(self.peer_detector) if self.peer_detector else None,
            "peer_embedder": str(self.peer_embedder) if self.peer_embedder else None,
            "process_repeats": self.process_repeats,
            "model_budget": {"warmup": self.model_budget.warmup, "seconds": self.model_budget.seconds},
        }


def per_image_loop(pipeline: FacePipeline, paths: Sequence[Path]) -> list[ImageFaces]:
    """How insightface's ``FaceAnalysis.get`` works, on our runners: read a photo, detect at
    batch 1, then align and embed its faces one at a time."""
    results = []
    for path in paths:
        prepared = pipeline.prepare(path)
        if prepared.error is not None:
            results.append(ImageFaces(path, error=prepared.error))
            continue
        faces = pipeline.detect([prepared])[0]
        vectors = [pipeline.embed(pipeline.align([prepared], [faces.select(np.array([i]))])) for i in range(len(faces))]
        embeddings = (
            np.concatenate(vectors)
            if vectors
            else np.zeros((0, pipeline.models.embedder.embedding_size or 0), np.float32)
        )
        results.append(ImageFaces(path, prepared.photo_size, faces, embeddings))
    return results


def _timed(run: Callable[[], list[ImageFaces]]) -> tuple[list[ImageFaces], float]:
    began = time.perf_counter()
    results = run()
    return results, time.perf_counter() - began


@dataclass(frozen=True)
class _Run:
    """One way of running the folder: its name, what it does in words, and a pass over the photos."""

    name: str
    description: str
    run: Callable[[], tuple[list[ImageFaces], float]]


@dataclass(frozen=True)
class _Peer:
    """The files insightface runs, and how they differ from ours (nothing: the same files)."""

    detector: Path
    embedder: Path
    unlike: tuple[str, ...]  # in words; judged agreement needs the same files and the same decode


def _peer(detector: ModelFile, embedder: ModelFile, options: PipelineBenchOptions) -> _Peer:
    peer_detector, peer_embedder = options.peer_detector or detector.path, options.peer_embedder or embedder.path
    unlike = [
        f"ours run {mine.name}, insightface {theirs.name}"
        for mine, theirs in ((detector.path, peer_detector), (embedder.path, peer_embedder))
        if mine.resolve() != theirs.resolve()
    ] + (["ours decode large JPEGs reduced"] if options.settings.reduced_decode else [])
    return _Peer(peer_detector, peer_embedder, tuple(unlike))


def bench_pipeline(
    detector: ModelFile, embedder: ModelFile, paths: Sequence[Path], options: PipelineBenchOptions
) -> PipelineBenchReport:
    started = time.perf_counter()
    if not paths:
        raise SpecError("no photos to run the pipeline on", field="pipeline")
    with_insightface = insightface_available() if options.insightface is None else options.insightface
    peer = _peer(detector, embedder, options)
    if with_insightface and not insightface_available():
        InsightFacePeer(peer.detector, peer.embedder, (0, 0))  # raises, saying what to install
    env = environment()
    one_by_one = dataclasses.replace(options.settings, batch_size=1, embed_batch_size=1, read_workers=0, lanes=1)
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(
            open_pipeline(detector, embedder, options.backend, options.settings, options.runner, options.detector_size)
        )
        loop = stack.enter_context(
            open_pipeline(detector, embedder, options.backend, one_by_one, options.runner, options.detector_size)
        )
        size = ours.models.detector_size
        report = PipelineBenchReport(
            options.to_dict(), env, detector.path.name, embedder.path.name, options.backend, ours.detector.provider
        )
        assert ours.embedder is not None
        mine = {"detector": ours.detector.precision, "embedder": ours.embedder.precision}
        report.precisions = {OURS: mine, LOOP: mine}  # insightface runs the FP32 sources: fp32, the default
        runs = [_batched_run(ours, paths, options), _loop_run(loop, paths)]
        if with_insightface:
            runs.append(_insightface_run(stack, peer, size, paths, options))
        report.models = _model_only(loop, ours.detect_batch, ours.embed_batch, detector, embedder, options.model_budget)
        first = _take_turns(report, runs, ours, len(paths), options.rounds)
    if options.process_repeats:
        sides = ProcessSides(
            options.process_flags,
            peer.detector,
            peer.embedder,
            size,
            options.runner.thread_count or 0,
            options.settings.det_thresh,
        )
        with progress_bar(options.process_repeats * (4 if with_insightface else 2), "whole processes") as advance:
            report.processes = measure_processes(sides, paths, options.process_repeats, with_insightface, advance)
    _count_arithmetic(report, detector, embedder, size, options.runner.thread_count)
    _judge_agreement(report, first, paths, peer, options.insightface)
    report.seconds = time.perf_counter() - started
    return report


def _batched_run(ours: FacePipeline, paths: Sequence[Path], options: PipelineBenchOptions) -> _Run:
    lanes = (
        f"{1 + len(ours.other_lanes)} lanes side by side, each reading its own photos, runtimes of "
        f"{ours.detector.threads or 'default'} thread(s) each"
        if ours.other_lanes
        else f"one lane: {options.settings.read_workers} reader threads"
    )
    description = (
        f"{lanes}; detector batches of {ours.detect_batch}, faces of a batch aligned together and embedded "
        f"{ours.embed_batch} per call"
    )
    return _Run(OURS, description, lambda: _timed(lambda: list(ours.run(paths))))


def _loop_run(loop: FacePipeline, paths: Sequence[Path]) -> _Run:
    description = (
        "the same runners one photo at a time: read, detect at batch 1, align and embed each face alone "
        "(how FaceAnalysis works)"
    )
    return _Run(LOOP, description, lambda: _timed(lambda: per_image_loop(loop, paths)))


def _insightface_run(
    stack: contextlib.ExitStack,
    peer: _Peer,
    size: tuple[int, int],
    paths: Sequence[Path],
    options: PipelineBenchOptions,
) -> _Run:
    analysis = stack.enter_context(
        InsightFacePeer(
            peer.detector,
            peer.embedder,
            size,
            options.settings.det_thresh,
            options.runner.thread_count,
            options.runner.spin_wait,
        )
    )
    files = f"{peer.detector.name} and {peer.embedder.name}" if peer.unlike else "the same two ONNX files"
    description = (
        f"insightface {insightface_version()} FaceAnalysis.get on {files}, same onnxruntime session options "
        "(insightface runs onnxruntime only: on the CPU provider here)"
    )
    return _Run(INSIGHTFACE, description, lambda: analysis.run(paths))


def _take_turns(
    report: PipelineBenchReport, runs: Sequence[_Run], ours: FacePipeline, photos: int, rounds: int
) -> dict[str, list[ImageFaces]]:
    """Each run's untimed first pass (it warms every runner, and is what the runs are compared on), then
    ``rounds`` timed passes each, the runs taking turns and each leading a round in turn. Returns the first
    passes' results by run."""
    first: dict[str, list[ImageFaces]] = {}
    with progress_bar(len(runs) * (rounds + 1), "the face pipeline") as advance:
        for run in runs:
            results, seconds = run.run()
            first[run.name] = results
            report.contenders.append(Contender(run.name, run.description, len(results), sum(len(r) for r in results)))
            advance(f"{run.name}: first pass {seconds:.2f} s")
        ours.times = StageTimes()  # the timed passes only
        for round_index in range(rounds):
            lead = round_index % len(runs)
            for run in [*runs[lead:], *runs[:lead]]:
                _, seconds = run.run()
                report.contender(run.name).pass_seconds.append(seconds)
                advance(f"{run.name}: {photos / seconds:.2f} photos/s")
    report.contender(OURS).stages = {stage: value / rounds for stage, value in ours.times.seconds.items()}
    return first


def _count_arithmetic(
    report: PipelineBenchReport, detector: ModelFile, embedder: ModelFile, size: tuple[int, int], threads: int
) -> None:
    """FLOPs per frame of both models and this CPU's ceilings, for each run's share of the peak."""
    report.peak = measured_peak(threads)
    if any(precision == "bf16" for run in report.precisions.values() for precision in run.values()):
        report.bf16_peak = measured_bf16_gemm(threads)
    counted = {
        "detector": flops_per_frame(detector.path, size),
        "embedder": flops_per_frame(embedder.path, embedder.spec.input_size),
    }
    report.flops = {role: flops.flops for role, flops in counted.items() if flops is not None}
    # INT8 files' layers kept FP32 (insightface runs the FP32 sources: nothing to add)
    kept = {role: flops.kept_fp32 for role, flops in counted.items() if flops is not None}
    report.fp32_flops = {OURS: kept, LOOP: kept}


def _judge_agreement(
    report: PipelineBenchReport,
    first: dict[str, list[ImageFaces]],
    paths: Sequence[Path],
    peer: _Peer,
    insightface: bool | None,
) -> None:
    """Did the runs find the same faces, and the hand-labelled ones; the photos that could not be read."""
    report.agreements.append(
        compare_runs(f"{OURS} vs {LOOP}", first[OURS], first[LOOP], SAME_RUNTIME_PIXELS, SAME_RUNTIME_COSINE)
    )
    labelled = labelled_faces(paths)
    if labelled:
        report.recall = {name: recall({r.path.name: r for r in results}, labelled) for name, results in first.items()}
    if INSIGHTFACE in first:
        against_peer = compare_runs(f"{OURS} vs {INSIGHTFACE}", first[OURS], first[INSIGHTFACE])
        against_peer.informational = "; ".join(peer.unlike)
        report.agreements.append(against_peer)
        if peer.unlike and labelled:
            report.recall_reference = INSIGHTFACE  # what ours must keep: the same labelled faces found
    else:
        why = "turned off" if insightface is False else f"not installed: {COMPARE_HINT}"
        report.notes.append(f"insightface was not run ({why})")
    failed = [r for r in first[OURS] if not r.ok]
    if failed:
        report.notes.append(
            f"{len(failed)} photo(s) could not be read and count as skipped: " + "; ".join(r.path.name for r in failed)
        )


def _model_only(
    one_lane: FacePipeline,
    detect_batch: int,
    embed_batch: int,
    detector: ModelFile,
    embedder: ModelFile,
    budget: Budget,
) -> list[ModelOnly]:
    """Each model alone on one lane's runners with all the threads (the per-image loop's): at the
    pipeline's batch size, then at 1."""
    measured = []
    for role, model, runner, batch, size in (
        ("detector", detector, one_lane.detector, detect_batch, one_lane.models.detector_size),
        ("embedder", embedder, one_lane.embedder, embed_batch, embedder.spec.input_size),
    ):
        assert runner is not None
        frames = model_frames(model, size, batch)
        entry = ModelOnly(role, model.path.name)
        for b in dict.fromkeys((batch, 1)):
            entry.timings.append(measure_batch(runner, frames, b, budget))
        measured.append(entry)
    return measured
