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
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.configs.arcface import ALIGNMENT_TEMPLATE_112
from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import ModelSpec
from facebatch.engines.pipeline.align import align_faces, template_for
from facebatch.engines.pipeline.face_detect import batch_limit, decode_detections, detector_input, detector_outputs
from facebatch.engines.pipeline.preprocess import blob_from_images, load_image
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections
from facebatch.engines.pipeline.settings import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.registry import RunnerOptions, onnx_runner
from facebatch.errors import FacebatchError, SpecError

PREFETCH_BATCHES = 2  # how many detection batches the readers may run ahead


@dataclass(frozen=True)
class FaceModels:
    """The specs the pipeline runs: a detector (SCRFD; landmarks needed to align) and,
    optionally, an embedder, with the detector's input size."""

    detector: ModelSpec
    detector_size: tuple[int, int]
    embedder: ModelSpec | None = None

    def __post_init__(self) -> None:
        if self.detector.head is None:
            raise SpecError(f"{self.detector.name} is not a face detector; pass an SCRFD artifact as --detector")
        if self.embedder is not None:
            if not self.embedder.family.is_embedder:
                raise SpecError(
                    f"{self.embedder.name} is not an embedder; pass an ArcFace artifact or a described embedder as --embedder"
                )
            if not self.detector.head.use_kps:
                raise SpecError(
                    f"{self.detector.name} finds no landmarks, and faces are aligned on 5 landmarks before they are "
                    "embedded; pass a detector with landmarks (the *_kps / *_bnkps variants)"
                )
            self.alignment_template()  # refuse an embedder whose crops cannot be aligned, before any work

    def alignment_template(self) -> np.ndarray:
        assert self.embedder is not None
        return template_for(self.embedder.alignment_template or ALIGNMENT_TEMPLATE_112, self.embedder.input_size)


@dataclass(frozen=True)
class PipelineSettings:
    det_thresh: float = DET_THRESH
    nms_thresh: float = NMS_THRESH
    max_faces: int = 0  # per photo; 0 keeps all (insightface's max_num)
    batch_size: int | None = DEFAULT_DETECT_BATCH  # photos per detector call (None: the detector's profile max)
    embed_batch_size: int | None = DEFAULT_EMBED_BATCH  # faces per embedder call (None: the embedder's profile max)
    read_workers: int = DEFAULT_READ_WORKERS  # 0: read in the calling thread, nothing overlaps

    def __post_init__(self) -> None:
        for name in ("batch_size", "embed_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpecError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.read_workers < 0 or self.max_faces < 0:
            raise SpecError("--workers and --max-faces cannot be negative")


@dataclass
class ImageFaces:
    """One photo's result: its faces in its own pixels (best score first) and their embeddings
    [n, D] (unit length), or the reason it could not be read."""

    path: Path
    image_size: tuple[int, int] | None = None  # height, width
    faces: Detections | None = None
    embeddings: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __len__(self) -> int:
        return 0 if self.faces is None else len(self.faces)

    def best_face(self) -> int | None:
        """The index of the face a comparison takes: the highest score (they are sorted)."""
        return 0 if len(self) else None


STAGES = ("read", "letterbox", "detect", "postprocess", "align", "embed")
STAGE_WORDS = {
    "read": "read and decode the photo (reader threads)",
    "letterbox": "letterbox and normalise (reader threads)",
    "detect": "detector runtime",
    "postprocess": "head layout, decode, NMS, back to photo pixels",
    "align": "similarity transforms and warps",
    "embed": "embedder runtime, normalise crops, L2",
}


@dataclass
class StageTimes:
    """Busy seconds per stage (reader stages run beside the others, so they may add up to more
    than the wall time), photos and faces seen, and the wall time of the whole run."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    images: int = 0
    faces: int = 0
    wall: float = 0.0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "images": self.images, "faces": self.faces, "wall": self.wall}


@dataclass
class PreparedPhoto:
    """What a reader thread hands the detector: the photo, its frame and scale, or an error."""

    path: Path
    image: np.ndarray | None = None
    frame: np.ndarray | None = None
    scale: float = 1.0
    error: str | None = None
    read_seconds: float = 0.0
    letterbox_seconds: float = 0.0


def prepare_photo(models: FaceModels, path: Path, image: np.ndarray | None = None) -> PreparedPhoto:
    """What a reader does with one photo (needs no runtime: Ray runs it as a task of its own)."""
    start = time.perf_counter()
    try:
        image = load_image(path) if image is None else image
    except FacebatchError as exc:
        return PreparedPhoto(path, error=str(exc), read_seconds=time.perf_counter() - start)
    read = time.perf_counter()
    frame, scale = detector_input(image, models.detector_size, models.detector.normalize)
    return PreparedPhoto(
        path, image, frame, scale, read_seconds=read - start, letterbox_seconds=time.perf_counter() - read
    )


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


class FacePipeline:
    """Detect → align → embed over active runners (the caller's ``with`` block owns them)."""

    def __init__(
        self,
        models: FaceModels,
        detector: Runner,
        embedder: Runner | None = None,
        settings: PipelineSettings | None = None,
    ) -> None:
        if (embedder is None) != (models.embedder is None):
            raise SpecError("an embedder runner goes with an embedder spec")
        self.models = models
        self.detector = detector
        self.embedder = embedder
        self.settings = settings or PipelineSettings()
        self.times = StageTimes()
        if self.settings.batch_size is not None:
            models.detector.check_batch(self.settings.batch_size)
        if self.settings.embed_batch_size is not None and models.embedder is not None:
            models.embedder.check_batch(self.settings.embed_batch_size)
        self.detect_batch = batch_limit(detector, self.settings.batch_size or models.detector.batch.max)
        self.embed_batch = (
            batch_limit(embedder, self.settings.embed_batch_size or models.embedder.batch.max)
            if embedder and models.embedder
            else 0
        )
        self.template = models.alignment_template() if models.embedder is not None else None

    # -- the stages, on photos already in memory -------------------------------------------------
    def prepare(self, path: Path, image: np.ndarray | None = None) -> PreparedPhoto:
        """Read (unless given) and letterbox one photo; a photo that cannot be read is an error
        in its result, not an exception."""
        return prepare_photo(self.models, path, image)

    def detect(self, prepared: Sequence[PreparedPhoto]) -> list[Detections]:
        """Faces of prepared photos, one detector call per ``detect_batch`` of them."""
        found: list[Detections] = []
        head = self.models.detector.head
        assert head is not None
        for start in range(0, len(prepared), self.detect_batch):
            chunk = prepared[start : start + self.detect_batch]
            frames = np.stack([p.frame for p in chunk])
            began = time.perf_counter()
            named, runtime = detector_outputs(self.detector, frames, head, self.models.detector_size)
            faces = decode_detections(
                named,
                [p.scale for p in chunk],
                [p.image.shape[:2] for p in chunk],
                head,
                self.models.detector_size,
                self.settings.det_thresh,
                self.settings.nms_thresh,
                self.settings.max_faces,
            )
            self.times.add("detect", runtime)
            self.times.add("postprocess", max(0.0, time.perf_counter() - began - runtime))
            found += faces
        return found

    def align(self, images: Sequence[np.ndarray], faces: Sequence[Detections]) -> np.ndarray:
        """Aligned crops [sum of faces, H, W, 3] of every face of every photo, in order."""
        assert self.models.embedder is not None and self.template is not None
        began = time.perf_counter()
        size = self.models.embedder.input_size
        crops = [
            align_faces(image, found.landmarks, self.template, size)
            for image, found in zip(images, faces, strict=False)
            if len(found)
        ]
        self.times.add("align", time.perf_counter() - began)
        return np.concatenate(crops) if crops else np.zeros((0, *size, 3), dtype=np.uint8)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Aligned crops → unit-length embeddings [n, D], ``embed_batch`` crops per call."""
        assert self.embedder is not None and self.models.embedder is not None
        spec = self.models.embedder
        began = time.perf_counter()
        (source,) = self.embedder.inputs
        rows = []
        for start in range(0, len(crops), self.embed_batch):
            frames = blob_from_images(crops[start : start + self.embed_batch], spec.normalize)
            output = next(iter(self.embedder.infer({source.name: frames}).values()))
            rows.append(output.reshape(len(frames), -1).astype(np.float32))
        embeddings = (
            l2_normalize(np.concatenate(rows)) if rows else np.zeros((0, spec.embedding_size or 0), dtype=np.float32)
        )
        self.times.add("embed", time.perf_counter() - began)
        return embeddings

    def finish(self, prepared: Sequence[PreparedPhoto]) -> list[ImageFaces]:
        """Detect (and embed) a batch of prepared photos; unreadable ones pass through as errors."""
        readable = [p for p in prepared if p.error is None]
        faces = self.detect(readable) if readable else []
        embeddings: list[np.ndarray | None] = [None] * len(readable)
        if self.embedder is not None and readable:
            vectors = self.embed(self.align([p.image for p in readable], faces))
            bounds = np.cumsum([0] + [len(f) for f in faces])
            embeddings = [vectors[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=False)]
        by_path = iter(zip(faces, embeddings, strict=False))
        results = []
        for p in prepared:
            self.times.add("read", p.read_seconds)
            self.times.add("letterbox", p.letterbox_seconds)
            if p.error is not None:
                results.append(ImageFaces(p.path, error=p.error))
                continue
            found, vectors = next(by_path)
            results.append(ImageFaces(p.path, p.image.shape[:2], found, vectors))
            self.times.faces += len(found)
        self.times.images += len(prepared)
        return results

    def process(self, images: Sequence[np.ndarray], names: Sequence[Path] | None = None) -> list[ImageFaces]:
        """Photos already in memory, in one go."""
        names = names or [Path(f"image_{i}") for i in range(len(images))]
        return self.finish([self.prepare(name, image) for name, image in zip(names, images, strict=False)])

    # -- the streaming run ----------------------------------------------------------------------------
    def run(self, paths: Sequence[Path], on_result: Callable[[ImageFaces], None] | None = None) -> Iterator[ImageFaces]:
        """Every photo in ``paths``, in order: readers prepare photos ahead while the detector and
        embedder work on the batch before. Yields one ``ImageFaces`` per photo."""
        began = time.perf_counter()
        workers = self.settings.read_workers
        try:
            if workers == 0:
                for start in range(0, len(paths), self.detect_batch):
                    yield from self._finish_and_report(
                        [self.prepare(p) for p in paths[start : start + self.detect_batch]], on_result
                    )
                return
            window = self.detect_batch * PREFETCH_BATCHES
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebatch-read") as pool:
                pending: list[Future[PreparedPhoto]] = []
                queued = 0
                while queued < len(paths) or pending:
                    while queued < len(paths) and len(pending) < window:
                        pending.append(pool.submit(self.prepare, paths[queued]))
                        queued += 1
                    batch, pending = pending[: self.detect_batch], pending[self.detect_batch :]
                    ready = [future.result() for future in batch]
                    while queued < len(paths) and len(pending) < window:  # keep the readers busy during inference
                        pending.append(pool.submit(self.prepare, paths[queued]))
                        queued += 1
                    yield from self._finish_and_report(ready, on_result)
        finally:
            self.times.wall += time.perf_counter() - began

    def _finish_and_report(
        self, prepared: list[PreparedPhoto], on_result: Callable[[ImageFaces], None] | None
    ) -> Iterator[ImageFaces]:
        for result in self.finish(prepared):
            if on_result is not None:
                on_result(result)
            yield result


@contextlib.contextmanager
def open_pipeline(
    detector: ModelFile,
    embedder: ModelFile | None = None,
    backend: str = "ort-cpu",
    settings: PipelineSettings | None = None,
    runner_options: RunnerOptions | None = None,
    detector_size: tuple[int, int] | None = None,
) -> Iterator[FacePipeline]:
    """A pipeline over ONNX files (ours, or any SCRFD / described embedder) on a backend that
    runs ONNX; its runners live as long as the ``with`` block."""
    size = detector.checked_size(detector_size)
    models = FaceModels(detector.spec, size, embedder.spec if embedder is not None else None)
    options = runner_options or RunnerOptions(
        spin_wait=False
    )  # two sessions take turns: spinning threads would slow each other
    with contextlib.ExitStack() as stack:
        det_runner = stack.enter_context(onnx_runner(backend, detector.path, detector.spec, size, options))
        emb_runner = None
        if embedder is not None:
            emb_runner = stack.enter_context(
                onnx_runner(backend, embedder.path, embedder.spec, embedder.spec.input_size, options)
            )
        yield FacePipeline(models, det_runner, emb_runner, settings)


@dataclass(frozen=True)
class FaceMatch:
    """The best faces of two photos compared: cosine of their embeddings against a threshold."""

    first: ImageFaces
    second: ImageFaces
    cosine: float
    threshold: float

    @property
    def same(self) -> bool:
        return self.cosine >= self.threshold

    def to_dict(self) -> dict:
        def face(result: ImageFaces) -> dict:
            assert result.faces is not None
            return {
                "path": str(result.path),
                "faces": len(result),
                "best_bbox": [float(v) for v in result.faces.boxes[0]],
                "best_score": float(result.faces.scores[0]),
            }

        return {
            "first": face(self.first),
            "second": face(self.second),
            "cosine": self.cosine,
            "threshold": self.threshold,
            "same_person": self.same,
        }


def match_best_faces(first: ImageFaces, second: ImageFaces, threshold: float) -> FaceMatch:
    """Compare the highest-scoring face of each photo; a photo without a face, or unread, is an error."""
    for result in (first, second):
        if not result.ok:
            raise SpecError(str(result.error))
        if not len(result) or result.embeddings is None:
            raise NoFaceFound(f"no face found in {result.path}; try a lower --det-thresh, or another photo")
    assert first.embeddings is not None and second.embeddings is not None
    return FaceMatch(first, second, cosine_similarity(first.embeddings[0], second.embeddings[0]), threshold)


class NoFaceFound(FacebatchError):
    """A photo that had to show a face shows none."""

    exit_code = 1
