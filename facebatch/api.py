"""The Python API: what the command line does, as functions (``import facebatch`` gives them).

    import facebatch
    result = facebatch.export("scrfd_2.5g_bnkps", weights="det_2.5g.onnx", size=(640, 640))
    report = facebatch.verify_model(result.onnx_path, reference="torch", photos=["photos/"], strict=True)
    assert report.passed, report.failure_line()
    with facebatch.open_pipeline(result.onnx_path, "mobilefacenet_128d_batch.onnx") as pipeline:
        for photo in pipeline.run(facebatch.photos(["photos/"])):
            print(photo.path.name, len(photo.faces), photo.embeddings.shape)

Every function takes paths as ``str`` or ``Path`` and returns the same result objects the CLI
renders (``to_dict``/``to_json``/``to_markdown`` where they are reports). Nothing is printed:
steps, progress and warnings go to the ``facebatch`` logger (see ``facebatch.core.progress``), and
bad input raises ``facebatch.errors.FacebatchError`` subclasses with the one-line message the
CLI prints. A failed proof raises ``VerificationFailed`` (export, fix) or comes back unwritten
with its report (convert, quantize: ``result.written`` is False).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from facebatch import API
from facebatch.api_pipeline import (  # noqa: F401 (the API)
    compare,
    compare_pairs,
    detect,
    embed,
    index,
    open_pipeline,
    search,
)
from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.run import Run  # noqa: F401 (with facebatch.Run(): the folders a run made, its reporter)
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.build.tensorrt_engine import BuilderOptions
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.options import PipelineOptions, PipelineSettings
from facebatch.engines.pipeline.photo_files import collect_images
from facebatch.engines.triton.options import RepositoryOptions  # noqa: F401
from facebatch.exporter.export_job import ExportResult
from facebatch.verify.report import VerifyReport
from facebatch.workflows.bench import BenchOptions, BenchResult
from facebatch.workflows.bench import bench as run_bench
from facebatch.workflows.bf16_proof import Bf16ProofOptions, Bf16ProofResult
from facebatch.workflows.bf16_proof import prove_bf16 as run_prove_bf16
from facebatch.workflows.build import BuildOptions, BuildResult, build_engine_job
from facebatch.workflows.convert import ConvertOptions, ConvertResult, convert_fp16
from facebatch.workflows.describe import DescribeOptions, DescribeResult
from facebatch.workflows.describe import describe as run_describe
from facebatch.workflows.export import ExportOptions
from facebatch.workflows.export import export as run_export
from facebatch.workflows.fix import FixOptions, FixResult, fix_model
from facebatch.workflows.quantize import QuantizeOptions, QuantizeResult, quantize_int8
from facebatch.workflows.release.card import CardOptions, CardResult
from facebatch.workflows.release.card import card as run_card
from facebatch.workflows.release.check import CheckResult, check_release
from facebatch.workflows.release.options import ModelRequest, ModelToExport, ReleaseOptions  # noqa: F401
from facebatch.workflows.release.run import ReleaseResult, run_release
from facebatch.workflows.serve import ServeOptions, ServeResult, serve  # noqa: F401 (serve(options, stop=event))
from facebatch.workflows.triton import TritonOptions, TritonResult, triton  # noqa: F401 (triton(options))
from facebatch.workflows.verify import VerifyModelOptions
from facebatch.workflows.verify import verify as run_verify

PathLike = str | Path


def photos(images: Sequence[PathLike]) -> list[Path]:
    """Photo files and folders → the photo files, as ``--images`` reads them (a folder's with its subfolders, in
    natural order)."""
    return collect_images([Path(item) for item in images]) if images else []


def export(
    model: str | None = None,
    *,
    weights: PathLike | None = None,
    size: tuple[int, int] | None = None,
    out_dir: PathLike = ExportOptions.out_dir,
    photos: Sequence[PathLike] = (),
    config: PathLike | None = None,
    dynamic_size: bool = ExportOptions.dynamic_size,
    **more: Any,
) -> ExportResult:
    """``facebatch export``: a catalog model (or one inferred from ONNX ``weights`` or a ``config``) → a proven,
    batch-safe ONNX and its sidecar in ``out_dir``; ``photos`` (photos or folders of them) feed the import and
    parity proofs; ``more``: any other field of ``ExportOptions`` (embedding_size, name, opset, parity_batch_sizes,
    seed). A failed proof raises and writes nothing."""
    given = dict(weights=weights, size=size, out_dir=out_dir, photos=photos, config=config, dynamic_size=dynamic_size)
    return run_export(ExportOptions(model=model, **given, **more))


def verify_model(
    model: PathLike,
    *,
    reference: PathLike | None = None,
    photos: Sequence[PathLike] = (),
    strict: bool = VerifyModelOptions.strict,
    batch_sizes: Sequence[int] = VerifyModelOptions.batch_sizes,
    sizes: Sequence[tuple[int, int]] | None = None,
    **more: Any,
) -> VerifyReport:
    """``facebatch verify``: the six checks; ``reference`` is ``"torch"`` (our artifacts) or another ONNX file
    for check 4; ``more``: any other field of ``VerifyModelOptions`` (seed, reference_weights, reference_config,
    embedder_spec, embedder_values, det_thresh, nms_thresh, and json, markdown, junit to write the report).
    ``report.passed`` is the gate's verdict, ``report.refusal()`` the error the command exits with."""
    given = dict(reference=reference, photos=photos, strict=strict, batch_sizes=batch_sizes, sizes=sizes)
    return run_verify(VerifyModelOptions(model=model, **given, **more))


def convert(
    model: PathLike,
    out: PathLike | None = None,
    *,
    photos: Sequence[PathLike] = (),
    fp16_io: bool = ConvertOptions.fp16_io,
    batch_sizes: Sequence[int] = ConvertOptions.batch_sizes,
    seed: int = ConvertOptions.seed,
    size: tuple[int, int] | None = ConvertOptions.size,
    embedder: EmbedderDescription | None = ConvertOptions.embedder,
    det_thresh: float = ConvertOptions.det_thresh,
    nms_thresh: float = ConvertOptions.nms_thresh,
) -> ConvertResult:
    """``facebatch convert --fp16``: the FP16 ONNX (default ``MODEL_fp16.onnx`` beside it), written only when it
    passes its gate, verify --strict against ``model``: ``result.written``, and ``result.refusal()`` is the error
    the command exits with when it did not. A trained detector needs ``photos`` that show faces."""
    options = ConvertOptions(
        fp16_io=fp16_io,
        photos=photos,  # type: ignore[arg-type]  # photos or folders: the options resolve them
        batch_sizes=tuple(batch_sizes),
        seed=seed,
        size=size,
        embedder=embedder,
        det_thresh=det_thresh,
        nms_thresh=nms_thresh,
    )
    return convert_fp16(Path(model), None if out is None else Path(out), options)


def prove_bf16(
    model: PathLike,
    *,
    photos: Sequence[PathLike],
    detector: PathLike | None = Bf16ProofOptions.detector,
    size: tuple[int, int] | None = Bf16ProofOptions.size,
    embedder: EmbedderDescription | None = Bf16ProofOptions.embedder,
    threads: int | None = Bf16ProofOptions.threads,
) -> Bf16ProofResult:
    """``facebatch prove-bf16``: ``model`` on OpenVINO in FP32 and in BF16 on ``photos``, judged by what users see;
    the verdict (pass or fail) is written to ``MODEL.bf16.json`` beside it, which ``precision="bf16"`` needs.
    ``result.passed``; ``result.refusal()`` is the error the command exits with when it failed."""
    options = Bf16ProofOptions(
        photos=photos,  # type: ignore[arg-type]  # photos or folders: the options resolve them
        detector=None if detector is None else Path(detector),
        size=size,
        embedder=embedder,
        threads=threads,
    )
    return run_prove_bf16(Path(model), options)


def quantize(
    model: PathLike,
    photos: Sequence[PathLike],
    out: PathLike | None = None,
    *,
    detector: PathLike | None = QuantizeOptions.detector,
    per_channel: bool = QuantizeOptions.per_channel,
    recipes: Sequence[str] = QuantizeOptions.recipes,
    max_drop: float | None = QuantizeOptions.max_drop,
    force: bool = QuantizeOptions.force,
    mixed: bool = QuantizeOptions.mixed,
    bench: bool = QuantizeOptions.bench,
    bench_backends: Sequence[str] = QuantizeOptions.bench_backends,
    bench_batch_sizes: Sequence[int] = QuantizeOptions.bench_batch_sizes,
    budget: Budget | None = None,
    threads: int | None = QuantizeOptions.threads,
) -> QuantizeResult:
    """``facebatch quantize``: the CPU INT8 ONNX calibrated on ``photos`` (default ``MODEL_int8.onnx`` beside it),
    written only when its accuracy gate passes (or ``force``): ``result.written``, and ``result.refusal()`` is the
    error the command exits with when it was not. The recipes suited to this CPU class are each tried (or
    ``recipes``), the most accurate kept; ``max_drop`` is the accuracy drop allowed; embedders need the
    ``detector`` that finds the faces, and with ``mixed`` one that fails wholly in INT8 keeps FP32 only the layers
    the gate needs. ``bench`` times FP32 and INT8 side by side (``budget``: bench's warm-up and seconds, default
    ``QuantizeOptions``'). The defaults are ``QuantizeOptions``', as the command's."""
    options = QuantizeOptions(
        photos=photos,  # type: ignore[arg-type]  # photos or folders: the options resolve them
        per_channel=per_channel,
        recipes=tuple(recipes),
        max_drop=max_drop,
        force=force,
        detector=None if detector is None else Path(detector),
        bench=bench,
        bench_backends=bench_backends,  # names, or one string "a,b": the options parse them
        bench_batch_sizes=tuple(bench_batch_sizes),
        threads=threads,
        mixed=mixed,
    )
    if budget is not None:
        options.budget = budget
    return quantize_int8(Path(model), options, None if out is None else Path(out))


def fix(
    model: PathLike,
    out: PathLike,
    *,
    size: tuple[int, int] | None = None,
    sizes: Sequence[tuple[int, int]] | None = FixOptions.sizes,
    batch_sizes: Sequence[int] = FixOptions.batch_sizes,
    photos: Sequence[PathLike] = (),
    seed: int = FixOptions.seed,
    det_thresh: float = FixOptions.det_thresh,
    nms_thresh: float = FixOptions.nms_thresh,
    strict: bool = FixOptions.strict,
) -> FixResult:
    """``facebatch fix``: repair a batch-1 ONNX by graph surgery, proven frame by frame, written, then verified
    against ``model`` as the command verifies it (``result.verify``; ``result.passed`` is the verdict and
    ``result.refusal()`` the error the command exits with when the checks fail). What surgery cannot repair
    raises ``VerificationFailed`` and writes nothing. ``size``: the one input size (``sizes``: several, the first
    the proof's); ``batch_sizes``, ``photos``, ``seed``, the thresholds and ``strict`` are the checks'."""
    options = FixOptions(
        sizes=sizes if sizes is not None else (None if size is None else [size]),
        batch_sizes=tuple(batch_sizes),
        photos=photos,  # type: ignore[arg-type]  # photos or folders: the options resolve them
        seed=seed,
        det_thresh=det_thresh,
        nms_thresh=nms_thresh,
        strict=strict,
    )
    return fix_model(Path(model), Path(out), options)


def build(
    model: PathLike,
    out: PathLike | None = None,
    *,
    precision: str = BuildOptions.precision.value,
    size: tuple[int, int] | None = BuildOptions.size,
    batch_min: int | None = BuildOptions.batch_min,
    batch_opt: int | None = BuildOptions.batch_opt,
    batch_max: int | None = BuildOptions.batch_max,
    workspace_gib: float | None = None,
    timing_cache: PathLike | None = None,
    photos: Sequence[PathLike] = (),
    seed: int = BuildOptions.seed,
) -> BuildResult:
    """``facebatch build``: a TensorRT engine (``out``, default build/engines/NAME_PRECISION_bMIN-MAX.plan) with one
    batch profile (default the spec's), run at its min, opt and max against the FP32 ONNX and written only when it
    agrees; ``photos`` feed that comparison. Needs TensorRT and a CUDA GPU: elsewhere it raises, saying that
    ``convert`` makes the verified FP16 ONNX on any machine."""
    options = BuildOptions(
        precision=precision,  # type: ignore[arg-type]  # the options read "fp16"/"fp32" or a Precision
        size=size,
        batch_min=batch_min,
        batch_opt=batch_opt,
        batch_max=batch_max,
        settings=BuilderOptions(workspace_gib, None if timing_cache is None else Path(timing_cache)),
        out=None if out is None else Path(out),
        photos=photos,  # type: ignore[arg-type]  # photos or folders: the options resolve them
        seed=seed,
    )
    return build_engine_job(Path(model), options)


def describe(
    model: PathLike, out: PathLike | None = None, *, embedder_spec: PathLike | None = None, **values: Any
) -> DescribeResult:
    """``facebatch describe``: the spec (YAML, ``result.yaml``) of a foreign ONNX face embedder, written to ``out``
    when given; ``values``: what you state (input_size, mean, std, color_order, embedding_size, input, output), over
    the ``embedder_spec`` you started; the rest is read from the graph or assumed, each marked so."""
    return run_describe(DescribeOptions(Path(model), None if out is None else Path(out), embedder_spec, values))


def bench(models: Sequence[PathLike] = (), **options: Any) -> BenchResult:
    """``facebatch bench``: the artifacts' throughput per backend and batch size (p50/p90/p99, raw samples
    kept; a ``BenchReport``), or with ``pipeline=FOLDER`` the face pipeline against the per-image loop and
    insightface, or with ``triton=URL, triton_model=NAME`` a served model per concurrency. ``options`` are
    every option of the command, named and defaulted as ``facebatch.workflows.bench.BenchOptions`` has them
    (``backends``, ``batch_sizes``, ``warmup``, ``seconds``, ``iters``, ``photos``, ``baseline``,
    ``published``, ``plot``, ``detector``, ``embedder``, ``rounds``, ``concurrency``, …), with the same
    refusals as the command line's."""
    return run_bench(BenchOptions(models=tuple(models), **options))


def release(options: ReleaseOptions) -> ReleaseResult:
    """``facebatch release``: every gate into one folder; ``result.passed`` and ``result.last_line()``. The models
    to export as the command names them (without artifacts, the catalog's defaults):
    ``facebatch.workflows.release.options.release_models``."""
    return run_release(options)


def card(options: CardOptions) -> CardResult:
    """``facebatch card``: a release folder's model card generated again from its reports, after the release check
    (a tampered folder is refused); ``options.published`` sets the throughput beside a published table."""
    return run_card(options)


__all__ = list(API)  # the names facebatch exports, listed once in facebatch/__init__.py
