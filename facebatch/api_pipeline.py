"""The Python API of the face pipeline and galleries: ``open_pipeline``, ``detect``, ``embed``, ``compare``,
``compare_pairs``, ``index`` and ``search`` as keyword functions over their use cases (``facebatch.workflows.faces``,
``.pairs`` and ``.gallery``), which prove the models as the command line does. ``facebatch.api`` re-exports them."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.engines.pipeline.defaults import DEFAULT_BACKEND, DEFAULT_PRECISION
from facebatch.engines.pipeline.face_pipeline import FacePipeline
from facebatch.engines.pipeline.options import PipelineOptions

PathLike = str | Path
# a photo: a file (or, for detect and embed, a folder), a photo file's bytes, or a decoded BGR uint8 HxWx3 array
Photo = str | Path | bytes | np.ndarray


def _run(
    detector: PathLike | ModelFile | None,
    embedder: PathLike | ModelFile | None,
    backend: str,
    settings: PipelineOptions | None,
    precision: str,
    threads: int | None,
    embedder_spec: PathLike | None = None,
):  # PipelineRun
    from facebatch.workflows.faces import PipelineRun
    from facebatch.workflows.models import ModelOptions

    models = ModelOptions(
        detector=detector,
        embedder=embedder,
        embedder_spec=None if embedder_spec is None else Path(embedder_spec),
        precision=precision,
    )
    return PipelineRun(models, backend, settings or PipelineOptions(), threads)


def open_pipeline(
    detector: PathLike | ModelFile,
    embedder: PathLike | ModelFile | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
) -> AbstractContextManager[FacePipeline]:
    """The batched detect → align → embed pipeline over two ONNX files (ours, or official ones),
    as a context manager; ``pipeline.run(photos)`` yields one ``ImageFaces`` per photo: paths, photo files' bytes
    and decoded BGR uint8 HxWx3 arrays (``cv2.imread``'s, what insightface's ``FaceAnalysis.get`` takes), mixed
    in one call; one held in memory is named ``photos[i]`` in its result. The models are
    proven as the command line proves them: an INT8 file runs only where its accuracy gate passed on this
    CPU class (``precision="int8"`` takes each model's gated INT8 twin; ``"auto"``, the default, each model's
    fastest precision proven on this CPU class, FP32 where none is), an embedder must look like a face
    embedder; no embedder: detection only."""
    from facebatch.workflows.faces import open_faces

    return open_faces(_run(detector, embedder, backend, settings, precision, threads), embed=embedder is not None)


def detect(
    photos: Sequence[Photo],
    detector: PathLike | ModelFile | None = None,
    *,
    json: PathLike | None = None,
    draw: PathLike | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
):  # -> FacesResult
    """``facebatch detect``: every face of the photos (``result.photos``; unreadable ones in ``result.failed``);
    ``json`` and ``draw`` write what the command writes. No detector: the first one in build/onnx. Photos: files,
    folders, and photos held in memory (bytes, BGR uint8 arrays; named ``photos[i]``), as ``open_pipeline`` takes."""
    from facebatch.workflows.faces import DetectOptions
    from facebatch.workflows.faces import detect as run_detect

    run = _run(detector, None, backend, settings, precision, threads)
    return run_detect(DetectOptions(photos, run, _path(json), _path(draw)))


def embed(
    photos: Sequence[Photo],
    output: PathLike,
    detector: PathLike | ModelFile | None = None,
    embedder: PathLike | ModelFile | None = None,
    *,
    json: PathLike | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
    embedder_spec: PathLike | None = None,
):  # -> FacesResult
    """``facebatch embed``: every face of the photos (as ``detect`` takes them) embedded into the ``.npz``
    ``output`` (unreadable photos in ``result.failed``)."""
    from facebatch.workflows.faces import EmbedOptions
    from facebatch.workflows.faces import embed as run_embed

    run = _run(detector, embedder, backend, settings, precision, threads, embedder_spec)
    return run_embed(EmbedOptions(photos, Path(output), run, _path(json)))


def compare(
    first: PathLike,
    second: PathLike,
    detector: PathLike | ModelFile | None = None,
    embedder: PathLike | ModelFile | None = None,
    *,
    threshold: float | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
    embedder_spec: PathLike | None = None,
):  # -> CompareResult
    """``facebatch compare``: are the best faces of two photos the same person (``result.same``, ``result.match``)?"""
    from facebatch.workflows.faces import CompareOptions
    from facebatch.workflows.faces import compare as run_compare

    run = _run(detector, embedder, backend, settings, precision, threads, embedder_spec)
    options = CompareOptions(Path(first), Path(second), run=run)
    if threshold is not None:
        options = CompareOptions(Path(first), Path(second), threshold, run)
    return run_compare(options)


def compare_pairs(
    pairs: PathLike,
    detector: PathLike | ModelFile | None = None,
    embedder: PathLike | ModelFile | None = None,
    *,
    threshold: float | None = None,
    json: PathLike | None = None,
    markdown: PathLike | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
    embedder_spec: PathLike | None = None,
):  # -> PairsResult
    """``facebatch compare --pairs``: each pair of the CSV ``pairs`` (``file_x,file_y[,label]`` rows, paths relative
    to its folder) judged, every distinct photo embedded once (``result.verdicts``); labelled pairs scored
    (``result.scores``: accuracy at the threshold, the best threshold, ROC AUC). Pairs with a photo that shows no
    face (``result.no_face``) or cannot be read get that verdict; ``result.complete`` is False then."""
    from facebatch.workflows.pairs import PairsOptions
    from facebatch.workflows.pairs import compare_pairs as run_pairs

    run = _run(detector, embedder, backend, settings, precision, threads, embedder_spec)
    given = {} if threshold is None else {"threshold": threshold}
    return run_pairs(PairsOptions(Path(pairs), run=run, json=_path(json), markdown=_path(markdown), **given))


def _path(item: PathLike | None) -> Path | None:
    return None if item is None else Path(item)


def index(
    photos: Sequence[PathLike],
    out: PathLike,
    *,
    detector: PathLike | ModelFile | None = None,
    embedder: PathLike | ModelFile | None = None,
    faces: str | None = None,
    subjects: PathLike | None = None,
    index_type: str | None = None,
    index_parameters: dict[str, int] | None = None,
    recall: float | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    json: PathLike | None = None,
):  # -> IndexSummary
    """``facebatch index``: every face of ``photos`` into the gallery ``out`` (made if new; only new or
    changed photos are run; unreadable ones in ``summary.failed``). The models are proven as the command
    line proves them; an approximate index is tuned to ``recall`` (None: the library's 0.99) on held-out
    queries, or refused. Needs the ``index`` extra (``ray`` for ``ray=True``)."""
    from facebatch.workflows.gallery import IndexOptions
    from facebatch.workflows.gallery import index as run_index

    given = {"faces": faces, "index": index_type, "recall": recall}
    options = IndexOptions(
        photos=[Path(p) for p in photos],
        out=Path(out),
        run=_run(detector, embedder, backend, settings, precision, threads),
        subjects=_path(subjects),
        index_parameters=dict(index_parameters or {}),
        ray=ray,
        ray_address=ray_address,
        json=_path(json),
        **{name: value for name, value in given.items() if value is not None},
    )
    return run_index(options)


def search(
    photos: Sequence[PathLike],
    gallery: PathLike,
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    detector: PathLike | ModelFile | None = None,
    embedder: PathLike | ModelFile | None = None,
    backend: str = DEFAULT_BACKEND,
    settings: PipelineOptions | None = None,
    precision: str = DEFAULT_PRECISION,
    threads: int | None = None,
    json: PathLike | None = None,
):  # -> SearchResult
    """``facebatch search``: for each face of each photo (or ``embed`` .npz), its top-k gallery faces
    (``QueryFace.matches``, ``QueryFace.answer``; iterating the result gives the query faces), run through
    the models the gallery records. Photos without a face are in ``result.no_face``, photos that could not be
    read in ``result.unreadable`` (``result.complete`` is False then), as the command line names them."""
    from facebatch.workflows.gallery import SearchOptions
    from facebatch.workflows.gallery import search as run_search

    given = {"top_k": top_k, "threshold": threshold}
    options = SearchOptions(
        queries=[Path(p) for p in photos],
        gallery=Path(gallery),
        run=_run(detector, embedder, backend, settings, precision, threads),
        json=_path(json),
        **{name: value for name, value in given.items() if value is not None},
    )
    return run_search(options)
