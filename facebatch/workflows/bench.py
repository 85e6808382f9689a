"""``bench``: every way facebatch times models, as one use case for the command line and the Python API.

- **Artifacts** (the default): each model on each backend at each batch size, with the batch-1 file an
  artifact replaces (``baseline``) and a published table (``published``) beside them, and a plot.
- **The face pipeline** (``pipeline``: a folder of photos): the batched pipeline against the per-image loop
  and insightface's ``FaceAnalysis``, in photos and faces per second, with whether they found the same faces.
- **A served model** (``triton`` and ``triton_model``): client-side throughput and latency per concurrency.

``bench(BenchOptions(...))`` returns the mode's report (``BenchResult``); each renders itself
(``to_dict``, ``to_json``, ``to_markdown``). Every refusal is made here, before the first measurement,
with the field it is about (the command line names the flag).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facebatch.configs.embedder import EmbedderDescription, read_embedder_description, read_embedder_file
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.atomic import InputFiles, check_output_file, write_bytes_atomic
from facebatch.core.errors import SpecError
from facebatch.engines.bench.job import ModelBenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.pipeline_bench import PipelineBenchOptions, bench_pipeline
from facebatch.engines.bench.pipeline_report import PipelineBenchReport
from facebatch.engines.bench.process_time import embed_flags
from facebatch.engines.bench.published import load_published
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.bench.triton_bench import LocalPipelineOptions, TritonBenchOptions, bench_triton
from facebatch.engines.bench.triton_report import TritonBenchReport
from facebatch.engines.pipeline.options import PipelineOptions
from facebatch.engines.pipeline.photo_files import IMAGE_SUFFIXES, collect_images, proof_photos
from facebatch.engines.runners.backends import parse_backends
from facebatch.engines.runners.factory import RunnerOptions
from facebatch.exporter.backends import make_runner
from facebatch.workflows.models import SPEC_SUFFIXES, ModelOptions, PipelineModels, choose, pipeline_models

# What bench returns: the report of the mode it ran (artifacts, the face pipeline, a served model)
BenchResult = BenchReport | PipelineBenchReport | TritonBenchReport


@dataclass(frozen=True)
class BenchOptions:
    """Everything ``facebatch bench`` takes, as values, with the library's defaults. Field names are the
    command line's own; its flags ``--backend``, ``--compare``, ``--images`` and ``--model`` set
    ``backends``, ``published``, ``photos`` and ``triton_model``."""

    # what to time: artifacts, or a folder of photos through the face pipeline, or a served model
    models: tuple[Path, ...] = ()
    pipeline: Path | None = None
    triton: str | None = None  # a running Triton server: host:port (HTTP), http://host:port or grpc://host:port
    triton_model: str | None = None  # the served model to time, e.g. face_pipeline
    # on what, for how long
    backends: tuple[str, ...] = ModelBenchOptions.backends
    batch_sizes: tuple[int, ...] = ModelBenchOptions.batch_sizes
    warmup: float = Budget.warmup
    seconds: float = Budget.seconds
    iters: int | None = Budget.iters
    size: tuple[int, int] | None = None  # input size, for artifacts (detectors) that take several
    threads: int | None = RunnerOptions.threads
    allow_fallback: bool = RunnerOptions.allow_fallback
    trt_fp16: bool = RunnerOptions.trt_fp16
    trt_cache: Path | None = RunnerOptions.trt_cache
    photos: tuple[Path, ...] = ()  # photos and folders of photos as frames (seeded noise fills the rest)
    seed: int = ModelBenchOptions.seed
    # artifacts
    baseline: Path | None = None  # the batch-1 file an artifact replaces, run at batch 1 beside it
    published: Path | None = None  # a published table (YAML), or a shipped one by name
    plot: Path | None = None  # a PNG of FPS and ms/frame against batch size
    embedder_spec: Path | None = None  # what a foreign embedder ONNX is (its YAML)
    embedder_description: EmbedderDescription | None = None  # the same as a value (artifacts; over embedder_spec)
    # the face pipeline (and a served model's local pipeline, for the ratio)
    detector: Path | None = None  # None: the first detector with real weights in build/onnx
    embedder: Path | None = None  # an ONNX or a spec .yaml naming one; None: as the detector
    detect_batch: int = PipelineOptions.batch_size
    embed_batch: int = PipelineOptions.embed_batch_size
    workers: int = PipelineOptions.read_workers
    lanes: int | None = PipelineOptions.lanes
    precision: str = ModelOptions.precision
    reduced_decode: bool = PipelineOptions.reduced_decode
    process_runs: int = PipelineBenchOptions.process_repeats
    rounds: int = PipelineBenchOptions.rounds
    insightface: bool | None = PipelineBenchOptions.insightface  # None: when it is installed
    # a served model
    concurrency: tuple[int, ...] = TritonBenchOptions.concurrency
    request_batch: int = TritonBenchOptions.request_batch
    command: str | None = None  # the command line, recorded in the report

    def __post_init__(self) -> None:
        _normalise(self)
        for name in ("detect_batch", "embed_batch"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name} must be at least 1, got {getattr(self, name)}", field=name)
        if self.workers < 0:
            raise SpecError(f"workers cannot be negative, got {self.workers}", field="workers")
        if self.process_runs < 0:
            raise SpecError(f"process_runs must be 0 or more, got {self.process_runs}", field="process_runs")
        if self.rounds < 1:  # as the pipeline bench refuses it, but before the photos and models are read
            raise SpecError(f"rounds must be at least 1, got {self.rounds}", field="rounds")

    def mode(self) -> str:
        """What is timed: "artifacts", "pipeline" or "triton"; refuses options of two modes at once."""
        if self.triton is not None or self.triton_model is not None:
            _check_served(self)
            return "triton"
        if self.pipeline is not None:
            if self.models:
                raise SpecError(
                    "pipeline times the detector and embedder it is given, not artifacts; drop the artifacts",
                    field="pipeline",
                )
            if self.plot is not None:
                raise SpecError(
                    "plot draws artifacts' throughput per batch size; the face pipeline has none", field="plot"
                )
            return "pipeline"
        if not self.models:
            raise SpecError(
                "name the artifacts to benchmark, or pipeline DIR to time the face pipeline over photos",
                field="pipeline",
            )
        return "artifacts"

    def budget(self) -> Budget:
        return Budget(self.warmup, self.seconds, self.iters)

    def inputs(self) -> InputFiles:
        """Every file the bench reads (a folder of photos by its photos' suffixes): what the plot may never be."""
        named = [*self.models, *self.photos, self.baseline, self.published, self.detector, self.embedder]
        files = [p for p in (*named, self.embedder_spec) if p is not None and not p.is_dir()]
        folders = [p for p in (*self.photos, self.pipeline) if p is not None and p.is_dir()]
        return InputFiles(files, [(folder, IMAGE_SUFFIXES) for folder in folders])


PATH_FIELDS = ("pipeline", "trt_cache", "baseline", "published", "plot", "embedder_spec", "detector", "embedder")


def _normalise(options: BenchOptions) -> None:
    """Paths as ``Path``, lists as tuples, a comma-separated string of backends as its names: what a
    Python caller passes (``str``, lists) made the values the fields say."""
    for name in PATH_FIELDS:
        if getattr(options, name) is not None:
            object.__setattr__(options, name, Path(getattr(options, name)))
    for name in ("models", "photos"):
        object.__setattr__(options, name, tuple(Path(item) for item in getattr(options, name)))
    if isinstance(options.backends, str):
        object.__setattr__(options, "backends", tuple(options.backends.split(",")))
    for name in ("backends", "batch_sizes", "concurrency"):
        object.__setattr__(options, name, tuple(getattr(options, name)))


def _check_served(options: BenchOptions) -> None:
    if options.triton_model is None:
        raise SpecError("triton_model is missing: name the served model to time", field="triton_model")
    if options.triton is None:
        raise SpecError(
            f"triton is missing: the server that serves {options.triton_model} (host:port, http://… or grpc://…)",
            field="triton",
        )
    if options.models or options.pipeline is not None:
        raise SpecError("triton times a served model alone; drop the artifacts and the photos folder", field="triton")
    if options.plot is not None:
        raise SpecError("plot draws artifacts' throughput per batch size; a served model has none", field="plot")


def bench(options: BenchOptions) -> BenchResult:
    """Time what ``options`` name (``options.mode()``): the artifacts' report, the face pipeline's, or the
    served model's. Nothing is measured before every refusal has been made."""
    mode = options.mode()
    if mode == "triton":
        result: BenchResult = bench_served(options)
    elif mode == "pipeline":
        result = bench_faces(options)
    else:
        result = bench_artifacts(options)
    result.command = options.command or result.command
    return result


def bench_artifacts(options: BenchOptions) -> BenchReport:
    """Each artifact on each backend at each batch size (and its baseline, published table and plot)."""
    if options.plot is not None:
        check_output_file(options.plot, "plot", options.inputs())
    backends = parse_backends(",".join(options.backends))
    description = options.embedder_description
    if description is None and options.embedder_spec is not None:
        description = read_embedder_description(options.embedder_spec)
    models = [read_model_file(path, description, options.size) for path in options.models]
    job = ModelBenchOptions(
        backends=backends,
        batch_sizes=options.batch_sizes,
        budget=options.budget(),
        size=options.size,
        photos=tuple(proof_photos(options.photos)),
        seed=options.seed,
        runner=RunnerOptions(options.threads, options.allow_fallback, options.trt_fp16, options.trt_cache),
        baseline=options.baseline,
        published=None if options.published is None else load_published(options.published),
    )
    report = bench_models(models, job, make_runner)
    if options.plot is not None:
        from facebatch.engines.bench.plot import plot_png

        write_bytes_atomic(options.plot, plot_png(report), "plot")
    return report


def bench_faces(options: BenchOptions) -> PipelineBenchReport:
    """The face pipeline over a folder of photos against the per-image loop and insightface, on one backend."""
    backends = parse_backends(",".join(options.backends))
    if len(backends) != 1:
        raise SpecError(
            f"the face pipeline runs on one backend: give backends one name, not {', '.join(backends)}",
            field="backends",
        )
    assert options.pipeline is not None
    paths = collect_images([options.pipeline])
    named = ModelOptions(options.detector, options.embedder, options.embedder_spec, size=options.size)
    given = pipeline_models(named)  # in FP32: what insightface runs
    assert given[1] is not None
    chosen = PipelineModels(  # each model's own precision on this backend (auto: a BF16 detector beside FP32)
        choose(given[0], "detector", options.precision, options.size, backend=backends[0]),
        choose(given[1], "embedder", options.precision, None, backend=backends[0]),
    )
    detector, embedder = chosen.detector.file, chosen.embedder.file
    settings = _pipeline_options(options)
    job = PipelineBenchOptions(
        backend=backends[0],
        settings=settings,
        rounds=options.rounds,
        insightface=options.insightface,
        runner=RunnerOptions(
            threads=options.threads,
            allow_fallback=options.allow_fallback,
            spin_wait=False,
            bf16=options.precision == "bf16",  # each model's proof checked above (choose)
            bf16_files=chosen.bf16_files,
        ),
        detector_size=options.size,
        peer_detector=fp32_source(given[0]),
        peer_embedder=fp32_source(given[1]),
        process_repeats=options.process_runs,
        process_flags=embed_flags(
            detector.path,
            _embedder_argument(options.embedder, embedder),
            backends[0],
            settings,
            options.threads,
            options.size,
            options.embedder_spec,
            precision=options.precision,
        ),
    )
    return bench_pipeline(detector, embedder, paths, job)


def bench_served(options: BenchOptions) -> TritonBenchReport:
    """A served model per concurrency level; with a detector or an embedder named, the same photos through
    the local pipeline too, for the served/local ratio."""
    assert options.triton is not None and options.triton_model is not None
    served = TritonBenchOptions(
        url=options.triton,
        model=options.triton_model,
        concurrency=options.concurrency,
        request_batch=options.request_batch,
        budget=Budget(options.warmup, options.seconds),
        photos=tuple(proof_photos(options.photos)),
        seed=options.seed,
    )
    local = None
    if options.detector is not None or options.embedder is not None:
        backends = parse_backends(",".join(options.backends))
        named = ModelOptions(
            options.detector, options.embedder, options.embedder_spec, size=options.size, precision=options.precision
        )
        detector, embedder = pipeline_models(named)
        assert embedder is not None
        local = LocalPipelineOptions(
            detector,
            embedder,
            backends[0],
            _pipeline_options(options, reduced_decode=False),
            RunnerOptions(threads=options.threads, spin_wait=False, bf16=options.precision == "bf16"),
            rounds=options.rounds,
        )
    return bench_triton(served, local)


def _pipeline_options(options: BenchOptions, reduced_decode: bool | None = None) -> PipelineOptions:
    return PipelineOptions(
        batch_size=options.detect_batch,
        embed_batch_size=options.embed_batch,
        read_workers=options.workers,
        reduced_decode=options.reduced_decode if reduced_decode is None else reduced_decode,
        lanes=options.lanes,
    )


def fp32_source(model: ModelFile) -> Path:
    """The file insightface runs in place of ``model``: an INT8 file's FP32 source, else the file itself."""
    return model.source_file() if model.precision == "int8" else model.path


def _embedder_argument(named: Path | None, embedder: ModelFile) -> Path:
    """What ``facebatch embed`` is given as its embedder for the same run: the spec file the caller named
    when it names the ONNX that runs (it says how to run it), else the ONNX."""
    if named is not None and named.suffix.lower() in SPEC_SUFFIXES:
        if read_embedder_file(named)[0].resolve() == embedder.path.resolve():
            return named
    return embedder.path
