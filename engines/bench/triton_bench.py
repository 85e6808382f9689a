"""``facebatch bench --triton``: a served model's client-side throughput and latency per
concurrency level, measured through tritonclient (perf_analyzer has no binary on PyPI).

Per level, that many client threads (one connection each) send requests back to back: a
warm-up, then a timed window. A request counts when it started and finished inside the
window; throughput is its rows (photos or frames) over the window. Triton's own statistics,
read before and after the window, show how its dynamic batchers merged the requests. With
a local detector and embedder the same photos also run through the local pipeline, for
the served/local ratio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import Normalize
from facebatch.core.environment import environment
from facebatch.core.errors import EngineError, SpecError
from facebatch.core.progress import progress_bar
from facebatch.engines.bench.defaults import DEFAULT_REQUEST_BATCH
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.timing import Latency
from facebatch.engines.bench.triton_report import ConcurrencyResult, LocalPipeline, TritonBenchReport
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineSettings
from facebatch.engines.pipeline.preprocess import proof_frames
from facebatch.engines.runners.base import TensorMeta
from facebatch.engines.runners.factory import RunnerOptions
from facebatch.engines.runners.triton_client_runner import TritonClientRunner, parse_triton_url
from facebatch.engines.triton.defaults import DEFAULT_CONCURRENCY

NOISE_SIZE = 640  # frames made for an input whose size the server leaves open
FRAME_NORMALIZE_MEAN, FRAME_NORMALIZE_STD = (
    127.5,
    128.0,
)  # frames for a tensor model: what SCRFD and ArcFace take, roughly


@dataclass(frozen=True)
class TritonBenchOptions:
    url: str
    model: str
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    request_batch: int = DEFAULT_REQUEST_BATCH  # rows (photos or frames) per request
    budget: Budget = field(default_factory=Budget)
    photos: tuple[Path, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.concurrency or min(self.concurrency) < 1:
            raise SpecError("concurrency takes positive numbers, e.g. 1,2,4,8,16", field="concurrency")
        if self.request_batch < 1:
            raise SpecError(f"request_batch must be at least 1, got {self.request_batch}", field="request_batch")


@dataclass(frozen=True)
class LocalPipelineOptions:
    """The same photos through the local pipeline: these artifacts, on this backend."""

    detector: ModelFile
    embedder: ModelFile
    backend: str = "ort-cpu"
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    runner: RunnerOptions = field(default_factory=lambda: RunnerOptions(spin_wait=False))
    rounds: int = 3


def _request_rows(meta: TensorMeta, count: int, photos: Sequence[Path], seed: int) -> np.ndarray:
    """``count`` distinct rows the input takes: encoded photos for a BYTES input, otherwise
    frames (photos letterboxed to the input's size, then seeded noise) in its dtype."""
    if meta.dtype == np.dtype(object):
        if not photos:
            raise SpecError(
                f"{meta.name} takes encoded photos; pass photos (a photo or a folder of them)", field="photos"
            )
        encoded = [Path(p).read_bytes() for p in photos]
        return np.array([[encoded[i % len(encoded)]] for i in range(count)], dtype=object)
    dims = [d if isinstance(d, int) and d > 0 else None for d in meta.shape[1:]]
    if len(dims) != 3 or dims[0] != 3:
        if None in dims:
            raise SpecError(f"{meta.name} has open dims {meta.describe()}; facebatch benchmarks image inputs [3, H, W]")
        rng = np.random.default_rng(seed)
        return rng.standard_normal((count, *dims)).astype(meta.dtype)  # type: ignore[arg-type]
    height, width = dims[1] or NOISE_SIZE, dims[2] or NOISE_SIZE
    normalize = Normalize((FRAME_NORMALIZE_MEAN,) * 3, (FRAME_NORMALIZE_STD,) * 3, rgb=True)
    distinct = min(count, max(1, len(photos)) if photos else 4)
    frames = proof_frames(distinct, height, width, normalize, list(photos)[:distinct], seed)
    return frames[np.arange(count) % distinct].astype(meta.dtype)


def _feeds(runner: TritonClientRunner, options: TritonBenchOptions, count: int) -> list[dict[str, np.ndarray]]:
    """``count`` request feeds of ``request_batch`` rows each, built once, cycled by the clients."""
    if runner.max_batch_size == 0 and options.request_batch != 1:
        raise SpecError(
            f"{options.model} has no batch axis (max_batch_size 0); request_batch must be 1", field="request_batch"
        )
    if runner.max_batch_size and options.request_batch > runner.max_batch_size:
        raise SpecError(
            f"request_batch {options.request_batch} is more than {options.model}'s max batch {runner.max_batch_size}",
            field="request_batch",
        )
    rows_needed = count * options.request_batch
    columns = {m.name: _request_rows(m, rows_needed, options.photos, options.seed) for m in runner.inputs}
    if runner.max_batch_size == 0:
        return [{name: rows[i] for name, rows in columns.items()} for i in range(count)]
    b = options.request_batch
    return [{name: rows[i * b : (i + 1) * b] for name, rows in columns.items()} for i in range(count)]


def _statistics_delta(before: dict, after: dict) -> dict[str, dict[str, int]]:
    delta = {}
    for name, counts in after.items():
        old = before.get(name, {})
        changed = {key: value - old.get(key, 0) for key, value in counts.items()}
        if any(changed.values()):
            delta[name] = changed
    return delta


def _level(
    options: TritonBenchOptions, concurrency: int, feeds: list[dict[str, np.ndarray]], rows_per_request: int
) -> ConcurrencyResult:
    """One concurrency level: warm-up, then the timed window. Each client thread opens its own
    connection (tritonclient's HTTP client belongs to the thread that made it)."""
    records: list[list[tuple[float, float]]] = [[] for _ in range(concurrency)]
    failures: list[BaseException] = []
    stop = threading.Event()
    connected = threading.Barrier(concurrency + 1)

    def client(index: int) -> None:
        done, step = records[index], index
        try:
            with TritonClientRunner(options.url, options.model) as runner:
                connected.wait()
                while not stop.is_set():
                    began = time.perf_counter()
                    runner.infer(feeds[step % len(feeds)], check_inputs=False)
                    done.append((began, time.perf_counter()))
                    step += concurrency
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            failures.append(exc)
            stop.set()
            connected.abort()

    threads = [
        threading.Thread(target=client, args=(i,), name=f"facebatch-client-{i}", daemon=True)
        for i in range(concurrency)
    ]
    with TritonClientRunner(options.url, options.model) as counter:
        for thread in threads:
            thread.start()
        try:
            connected.wait()
            stop.wait(options.budget.warmup)
            before = counter.statistics()
            window_start = time.perf_counter()
            stop.wait(options.budget.seconds)
            window_end = time.perf_counter()
            after = counter.statistics()
        except threading.BrokenBarrierError:
            pass
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    if failures:
        raise (
            failures[0]
            if isinstance(failures[0], (EngineError, SpecError))
            else EngineError(f"a client failed: {failures[0]}")
        )
    inside = [(a, b) for done in records for a, b in done if a >= window_start and b <= window_end]
    if not inside:
        raise EngineError(
            f"no request of {options.model} finished inside the {options.budget.seconds:g} s window at concurrency "
            f"{concurrency}; raise seconds (the timed window per level)",
            field="seconds",
        )
    latency = Latency(tuple(b - a for a, b in inside))
    return ConcurrencyResult(
        concurrency,
        latency,
        len(inside),
        len(inside) * rows_per_request,
        window_end - window_start,
        _statistics_delta(before, after),
    )


def local_pipeline_speed(local: LocalPipelineOptions, photos: Sequence[Path]) -> LocalPipeline:
    """The same photos through the local pipeline: one untimed pass, then ``rounds`` timed passes."""
    passes = []
    faces = 0
    with open_pipeline(local.detector, local.embedder, local.backend, local.settings, local.runner) as pipeline:
        list(pipeline.run(list(photos)))
        for _ in range(local.rounds):
            began = time.perf_counter()
            faces = sum(len(result) for result in pipeline.run(list(photos)))
            passes.append(time.perf_counter() - began)
    return LocalPipeline(
        local.detector.path.name,
        local.embedder.path.name,
        local.backend,
        pipeline.detector.provider,
        len(photos),
        faces,
        passes,
    )


def bench_triton(options: TritonBenchOptions, local: LocalPipelineOptions | None = None) -> TritonBenchReport:
    began = time.perf_counter()
    protocol, address = parse_triton_url(options.url)
    with TritonClientRunner(options.url, options.model) as probe:
        inputs = [m.describe() for m in probe.inputs]
        rows_per_request = options.request_batch if probe.max_batch_size else 1
        feeds = _feeds(probe, options, max(options.concurrency) * 2)
        max_batch = probe.max_batch_size
    report = TritonBenchReport(
        url=f"{protocol}://{address}",
        model=options.model,
        inputs=inputs,
        max_batch_size=max_batch,
        request_batch=rows_per_request,
        photos=len(options.photos),
        options={
            "concurrency": list(options.concurrency),
            "warmup_s": options.budget.warmup,
            "seconds": options.budget.seconds,
            "request_batch": options.request_batch,
        },
        environment=environment(),
    )
    with progress_bar(len(options.concurrency), f"Triton {options.model}") as advance:
        for concurrency in options.concurrency:
            report.results.append(_level(options, concurrency, feeds, rows_per_request))
            advance(f"concurrency {concurrency}")
    if local is not None:
        if not options.photos:
            raise SpecError("the local pipeline runs over photos; pass photos", field="photos")
        report.local = local_pipeline_speed(local, options.photos)
    report.seconds = time.perf_counter() - began
    return report


def merged(result: ConcurrencyResult, model: str) -> bool:
    """Did Triton's batcher run ``model`` fewer times than it had requests in the window?"""
    counts = result.statistics.get(model, {})
    return 0 < counts.get("execution_count", 0) < counts.get("requests", 0)
