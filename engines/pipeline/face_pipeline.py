"""The batched face pipeline: photos → faces (box, score, 5 landmarks) → aligned crops →
L2-normalised embeddings, on any runner.

    with detector_runner, embedder_runner:
        pipeline = FacePipeline(FaceModels(detector, embedder), detector_runner, embedder_runner)
        for result in pipeline.run(paths):               # streaming, one ImageFaces per photo
            result.faces.boxes, result.embeddings

Where the time goes, and why it is arranged so: on a CPU the
detector's runtime already fills the cores at batch 1, so what a per-image loop wastes is
the time the runtime waits: JPEG decoding, letterboxing and normalising, one face at a time
alignment and embedding calls. Here a small thread pool reads and letterboxes the next
photos while the runtime works (OpenCV and the runtimes release the GIL), the detector takes
batches of frames, the transforms of all faces of a batch are estimated at once, and the
embedder takes the faces of all photos of a batch together. ``StageTimes`` records each
stage's busy time.

The pieces: ``options`` (``FaceModels``, ``PipelineOptions``), ``reader`` (a photo prepared for the
detector; the prefetching readers), ``stages`` (detect, align, embed of a batch), ``lanes`` (pipelines
side by side), ``image_faces`` (the results and stage times), ``opening`` (``open_pipeline``: the
runners and the CPU policy) and ``compare`` (the best faces of two photos).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from facebatch.configs.spec import ModelSpec
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.face_detect import batch_limit
from facebatch.engines.pipeline.image_faces import ImageFaces, StageTimes
from facebatch.engines.pipeline.lanes import LaneScheduler
from facebatch.engines.pipeline.options import FaceModels, PipelineOptions
from facebatch.engines.pipeline.reader import PhotoItem, PreparedPhoto, photo_items, prefetched, prepare_photo
from facebatch.engines.pipeline.scrfd_decode import Detections
from facebatch.engines.pipeline.stages import align_faces, detect_faces, embed_crops
from facebatch.engines.runners.base import Runner


class FacePipeline:
    """Detect → align → embed over active runners (the caller's ``with`` block owns them)."""

    def __init__(
        self,
        models: FaceModels,
        detector: Runner,
        embedder: Runner | None = None,
        options: PipelineOptions | None = None,
    ) -> None:
        if (embedder is None) != (models.embedder is None):
            raise SpecError("an embedder runner goes with an embedder spec")
        self.models = models
        self.detector = detector
        self.embedder = embedder
        self.options = options or PipelineOptions()
        self.times = StageTimes()
        self.detect_batch = _batch(detector, models.detector, self.options.batch_size, "batch_size")
        self.embed_batch = (
            _batch(embedder, models.embedder, self.options.embed_batch_size, "embed_batch_size")
            if embedder and models.embedder
            else 0
        )
        self.template = models.alignment_template() if models.embedder is not None else None
        self.other_lanes: list[FacePipeline] = []  # open_pipeline's further lanes, which run() shares photos with

    # -- the stages, on photos already in memory -------------------------------------------------
    def prepare(self, path: PhotoItem, image: np.ndarray | None = None) -> PreparedPhoto:
        """Read (unless given) and letterbox one photo; a photo that cannot be read is an error
        in its result, not an exception."""
        return prepare_photo(self.models, path, image, self.options.reduced_decode, self.options.max_photo_pixels)

    def detect(self, prepared: Sequence[PreparedPhoto]) -> list[Detections]:
        """Faces of prepared photos, one detector call per ``detect_batch`` of them."""
        return detect_faces(self.detector, self.models, prepared, self.detect_batch, self.options, self.times)

    def align(self, photos: Sequence[PreparedPhoto], faces: Sequence[Detections]) -> np.ndarray:
        """Aligned crops [sum of faces, H, W, 3] of every face of every photo, in order (``stages.align_faces``)."""
        assert self.models.embedder is not None and self.template is not None
        return align_faces(self.models.embedder, self.template, photos, faces, self.times)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Aligned crops → unit-length embeddings [n, D], ``embed_batch`` crops per call."""
        assert self.embedder is not None and self.models.embedder is not None
        return embed_crops(self.embedder, self.models.embedder, crops, self.embed_batch, self.times)

    def finish(self, prepared: Sequence[PreparedPhoto]) -> list[ImageFaces]:
        """Detect (and embed) a batch of prepared photos; unreadable ones pass through as errors."""
        readable = [p for p in prepared if p.error is None]
        faces = self.detect(readable) if readable else []
        embeddings: list[np.ndarray | None] = [None] * len(readable)
        if self.embedder is not None and readable:
            vectors = self.embed(self.align(readable, faces))
            bounds = np.cumsum([0] + [len(f) for f in faces])
            embeddings = [vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=False)]
        by_path = iter(zip(faces, embeddings, strict=False))
        results = []
        for p in prepared:
            self.times.add("read", p.read_seconds)
            self.times.add("letterbox", p.letterbox_seconds)
            if p.error is not None:
                results.append(ImageFaces(p.path, error=p.error, error_field=p.error_field))
                continue
            found, vectors = next(by_path)
            results.append(ImageFaces(p.path, p.photo_size, found, vectors))
            self.times.faces += len(found)
        self.times.images += len(prepared)
        return results

    def process(self, images: Sequence[np.ndarray], names: Sequence[Path] | None = None) -> list[ImageFaces]:
        """Photos already in memory, in one go."""
        names = names or [Path(f"image_{i}") for i in range(len(images))]
        return self.finish([self.prepare(name, image) for name, image in zip(names, images, strict=False)])

    def read_and_finish(self, paths: Sequence[PhotoItem]) -> list[ImageFaces]:
        """Photos read and detected (and embedded) in the calling thread: one lane's chunk."""
        return self.finish([self.prepare(path) for path in paths])

    # -- the streaming run ----------------------------------------------------------------------------
    def run(
        self, paths: Sequence[object], on_result: Callable[[ImageFaces], None] | None = None
    ) -> Iterator[ImageFaces]:
        """Every photo in ``paths``, in order: with other lanes, shared among them (``LaneScheduler``);
        else readers prepare photos ahead while the detector and embedder work on the batch before
        (``prefetched``). Yields one ``ImageFaces`` per photo. A photo is a path, a photo file's bytes or a
        decoded BGR uint8 HxWx3 array, mixed as the caller likes (``reader.photo_items``: anything else is
        refused before any work); one held in memory is named ``photos[i]`` in its result."""
        paths = photo_items(paths)
        if self.other_lanes:
            yield from self._run_in_lanes(paths, on_result)
            return
        began = time.perf_counter()
        batches = prefetched(paths, self.prepare, self.detect_batch, self.options.read_workers)
        try:
            with contextlib.closing(batches):
                for ready in batches:
                    yield from _reported(self.finish(ready), on_result)
        finally:
            self.times.wall += time.perf_counter() - began

    def _run_in_lanes(
        self, paths: Sequence[PhotoItem], on_result: Callable[[ImageFaces], None] | None
    ) -> Iterator[ImageFaces]:
        began = time.perf_counter()
        lanes = [self, *self.other_lanes]
        chunks = LaneScheduler.chunked(paths, self.detect_batch, len(lanes))
        try:
            with LaneScheduler([lane.read_and_finish for lane in lanes], chunks) as scheduler:
                for results in scheduler.results():
                    yield from _reported(results, on_result)
        finally:  # the lanes have stopped: their busy times are added to this one's
            for lane in self.other_lanes:
                self.times.absorb(lane.times)
                lane.times = StageTimes()
            self.times.wall += time.perf_counter() - began


def _batch(runner: Runner, spec: ModelSpec, wanted: int | None, field: str) -> int:
    """How many frames one call of ``runner`` takes: ``wanted`` (the option named ``field``), within the
    spec's batch profile, or the profile's max; 1 for a graph whose batch is fixed to 1."""
    if wanted is not None:
        try:
            spec.check_batch(wanted)
        except SpecError as exc:
            raise SpecError(str(exc), field=field) from None
    return batch_limit(runner, wanted or spec.batch.max)


def _reported(results: list[ImageFaces], on_result: Callable[[ImageFaces], None] | None) -> Iterator[ImageFaces]:
    for result in results:
        if on_result is not None:
            on_result(result)
        yield result
