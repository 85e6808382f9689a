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

from facebatch import API
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.engines.bench.job import BenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.pipeline.face_pipeline import FacePipeline, ImageFaces, PipelineSettings
from facebatch.engines.pipeline.face_pipeline import open_pipeline as open_faces
from facebatch.engines.pipeline.preprocess import collect_images
from facebatch.exporter.backends import make_runner
from facebatch.exporter.dispatch import export_model
from facebatch.exporter.export_job import ExportResult
from facebatch.exporter.settings import ExportSettings
from facebatch.exporter.torch_reference import reference_from_argument
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import verify_model as run_checks
from facebatch.workflows.convert import ConvertOptions, ConvertResult, convert_fp16
from facebatch.workflows.fix import FixResult, fix_onnx
from facebatch.workflows.quantize import QuantizeOptions, QuantizeResult, quantize_int8
from facebatch.workflows.release.check import CheckResult, check_release
from facebatch.workflows.release.options import ModelRequest, ReleaseOptions
from facebatch.workflows.release.run import ReleaseResult, run_release

PathLike = str | Path


def photos(images: Sequence[PathLike]) -> list[Path]:
    """Photo files and folders → the photo files, as ``--images`` reads them (a folder's in name order)."""
    return collect_images([Path(item) for item in images]) if images else []


_photos = photos  # the functions below take a parameter named photos, which hides the function


def open_pipeline(
    detector: PathLike | ModelFile,
    embedder: PathLike | ModelFile | None = None,
    *,
    backend: str = "ort-cpu",
    settings: PipelineSettings | None = None,
) -> AbstractContextManager[FacePipeline]:
    """The batched detect → align → embed pipeline over two ONNX files (ours, or official ones),
    as a context manager; ``pipeline.run(paths)`` yields one ``ImageFaces`` per photo."""

    def model(item: PathLike | ModelFile) -> ModelFile:
        return item if isinstance(item, ModelFile) else read_model_file(Path(item))

    return open_faces(
        model(detector), None if embedder is None else model(embedder), backend=backend, settings=settings
    )


def export(
    model: str | None = None,
    *,
    weights: PathLike | None = None,
    size: tuple[int, int] | None = None,
    out_dir: PathLike = ExportSettings.out_dir,
    photos: Sequence[PathLike] = (),
    config: PathLike | None = None,
    dynamic_size: bool = False,
) -> ExportResult:
    """``facebatch export``: a catalog model (or one inferred from ONNX ``weights``) → a proven,
    batch-safe ONNX and its sidecar in ``out_dir``; ``photos`` feed the import and parity proofs."""
    settings = ExportSettings(out_dir=Path(out_dir), photos=_photos(photos))
    return export_model(
        model,
        weights=None if weights is None else Path(weights),
        config=None if config is None else Path(config),
        size=size,
        dynamic_size=dynamic_size,
        settings=settings,
    )


def verify_model(
    model: PathLike,
    *,
    reference: PathLike | None = None,
    photos: Sequence[PathLike] = (),
    strict: bool = False,
    batch_sizes: Sequence[int] = VerifyOptions.batch_sizes,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> VerifyReport:
    """``facebatch verify``: the six checks; ``reference`` is ``"torch"`` (our artifacts) or another
    ONNX file for check 4. ``report.passed`` is the gate's verdict."""
    factory = None if reference is None else reference_from_argument(str(reference))
    options = VerifyOptions(
        batch_sizes=tuple(batch_sizes), photos=_photos(photos), sizes=sizes, reference=factory, strict=strict
    )
    return run_checks(Path(model), options)


def convert(model: PathLike, out: PathLike | None = None, *, photos: Sequence[PathLike] = ()) -> ConvertResult:
    """``facebatch convert --fp16``: the FP16 ONNX, written only when it passes its gate."""
    return convert_fp16(Path(model), None if out is None else Path(out), ConvertOptions(photos=_photos(photos)))


def quantize(
    model: PathLike,
    photos: Sequence[PathLike],
    out: PathLike | None = None,
    *,
    detector: PathLike | None = None,
    bench: bool = False,
    mixed: bool = False,
) -> QuantizeResult:
    """``facebatch quantize``: the CPU INT8 ONNX calibrated on ``photos``, written only when its
    accuracy gate passes; embedders need the ``detector`` that finds the faces, and with ``mixed``
    one that fails wholly in INT8 keeps FP32 only the layers the gate needs (``--mixed``)."""
    options = QuantizeOptions(
        photos=_photos(photos), detector=None if detector is None else Path(detector), bench=bench, mixed=mixed
    )
    return quantize_int8(Path(model), options, None if out is None else Path(out))


def fix(model: PathLike, out: PathLike, *, size: tuple[int, int] | None = None) -> FixResult:
    """``facebatch fix``: repair a batch-1 ONNX by graph surgery, proven frame by frame."""
    return fix_onnx(Path(model), Path(out), size=size)


def bench(
    models: Sequence[PathLike],
    *,
    backends: Sequence[str] = BenchOptions.backends,
    batch_sizes: Sequence[int] = BenchOptions.batch_sizes,
    seconds: float = Budget.seconds,
    photos: Sequence[PathLike] = (),
) -> BenchReport:
    """``facebatch bench``: throughput per backend and batch size (p50/p90/p99, raw samples kept)."""
    options = BenchOptions(
        backends=tuple(backends), batch_sizes=tuple(batch_sizes), budget=Budget(seconds=seconds), photos=_photos(photos)
    )
    return bench_models([read_model_file(Path(m)) for m in models], options, make_runner)


def index(
    photos: Sequence[PathLike],
    out: PathLike,
    *,
    detector: PathLike | ModelFile,
    embedder: PathLike | ModelFile,
    faces: str = "all",
    subjects: PathLike | None = None,
    index_type: str = "flat",
    index_parameters: dict[str, int] | None = None,
    backend: str = "ort-cpu",
    settings: PipelineSettings | None = None,
    ray: bool = False,
    ray_address: str | None = None,
):  # -> IndexSummary
    """``facebatch index``: every face of ``photos`` into the gallery ``out`` (made if new; only new or
    changed photos are run). Needs the ``index`` extra (``ray`` for ``ray=True``)."""
    from facebatch.engines.gallery.faiss_index import IndexChoice
    from facebatch.engines.gallery.index_job import IndexRequest, index_photos

    def model(item: PathLike | ModelFile) -> ModelFile:
        return item if isinstance(item, ModelFile) else read_model_file(Path(item))

    request = IndexRequest(
        photos=[Path(p) for p in photos],
        out=Path(out),
        detector=model(detector),
        embedder=model(embedder),
        faces=faces,
        subjects_csv=None if subjects is None else Path(subjects),
        index=IndexChoice(index_type, dict(index_parameters or {})),
        backend=backend,
        settings=settings or PipelineSettings(),
        ray=ray,
        ray_address=ray_address,
    )
    return index_photos(request)


def search(
    photos: Sequence[PathLike],
    gallery: PathLike,
    *,
    top_k: int = 5,
    threshold: float | None = None,
    backend: str = "ort-cpu",
    settings: PipelineSettings | None = None,
):  # -> list[QueryFace]
    """``facebatch search``: for each face of each photo, its top-k gallery faces (``QueryFace.matches``,
    ``QueryFace.answer``), run through the models the gallery records. Photos without a face give none."""
    from facebatch.engines.gallery.photos import collect_photos
    from facebatch.engines.gallery.search import GallerySearch, check_gallery_models, photo_queries
    from facebatch.engines.gallery.settings import DEFAULT_THRESHOLD

    searcher = GallerySearch(Path(gallery))
    manifest = searcher.gallery.manifest
    detector, embedder = read_model_file(Path(manifest.detector.file)), read_model_file(Path(manifest.embedder.file))
    check_gallery_models(searcher.gallery, detector, embedder)
    with open_faces(detector, embedder, backend=backend, settings=settings) as pipeline:
        found = photo_queries(pipeline, [Path(p.path) for p in collect_photos([Path(p) for p in photos])])
    if found.vectors:
        import numpy as np

        cut = DEFAULT_THRESHOLD if threshold is None else threshold
        for query, matches in zip(found.faces, searcher.search(np.stack(found.vectors), top_k, cut), strict=True):
            query.matches = matches
    return found.faces


def release(options: ReleaseOptions) -> ReleaseResult:
    """``facebatch release``: every gate into one folder; ``result.passed`` and ``result.last_line()``."""
    return run_release(options)


__all__ = list(API)  # the names facebatch exports, listed once in facebatch/__init__.py
