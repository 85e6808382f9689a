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
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.configs.arcface import ALIGNMENT_TEMPLATE_112
from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import ModelSpec
from facebatch.core.environment import physical_cores
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.pipeline.align import similarity_transforms, template_for, transform_scale, warp_faces
from facebatch.engines.pipeline.face_detect import batch_limit, decode_detections, detector_input, detector_outputs
from facebatch.engines.pipeline.image_header import (
    DEFAULT_MAX_PHOTO_PIXELS,
    PhotoHeader,
    PhotoRefused,
    check_limit_against_opencv,
)
from facebatch.engines.pipeline.preprocess import (
    DecodedPhoto,
    blob_from_images,
    decode_for_detector,
    decode_within,
    on_reduced_image,
)
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections
from facebatch.engines.pipeline.settings import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.registry import RunnerOptions, onnx_runner

PREFETCH_BATCHES = 2  # how many detection batches the readers may run ahead
LANE_CHUNKS_AHEAD = 2  # with lanes: chunks of photos per lane that may be done before the caller takes them
LANE_MIN_CHUNKS = 4  # with lanes: chunks are made small enough that each lane gets at least this many
# where lanes run: the CPU runtimes (OpenVINO's threads unpinned: pinned, two lanes ran 7.0 photos/s against 12.1, one
# lane 12.6); GPU backends run one lane. By default only onnxruntime's: OpenVINO lanes gain on 12 MP photos (9.9
# photos/s against 8.9) but not on the fixtures (22.6-23.2 against 22.3-26.0, INT8), and each lane compiles its own
# models (the first photo of `embed --precision int8` 1.9-2.1 s instead of 1.2-1.4), so there they are asked for
LANE_BACKENDS = ("ort-cpu", "openvino")
DEFAULT_LANE_BACKENDS = ("ort-cpu",)
MAX_DEFAULT_LANES = 8
# with reduced_decode, a face is warped from the reduced image when its crop enlarges it at most this much, else from
# the finest decode it needs (1/2, or whole). Measured on the 17 fixture photos upscaled to 4000 px, warping from the
# same landmarks: crops from the 1/4 decode are cosine ≥ 0.9948 (mean 0.998) to whole-decode crops at a scale up to
# 0.5 and ≥ 0.9877 (mean 0.996) at 0.5-1.0; crops from a finer decode ≥ 0.9992. What moves small faces further is
# the detector's landmarks (docs/pipeline.md, lever 1)
REDUCED_ALIGN_MAX_SCALE = 1.0


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
    # decode large JPEGs at 1/2, 1/4, 1/8 of their size for the detector: 6× less decoding on 12 MP photos, but
    # not the same faces as a full decode (boxes up to 2.1 and landmarks 1.6 detector px apart, so cosine ≥ 0.985
    # for faces of 40 detector px and more, down to 0.45 under 20 px; lever 1 of docs/pipeline.md): asked for,
    # never the default
    reduced_decode: bool = False
    # pipelines side by side, each with its own runtimes, reading and running its own photos (None: lane_plan's
    # default, one per physical core on ort-cpu; openvino runs them when asked); with more than one, read_workers is
    # not used
    lanes: int | None = None
    # a photo whose header says more pixels, gives no size or is not a JPEG, PNG, BMP, GIF, WebP or TIFF is skipped
    # with its reason, never decoded (image_header)
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS

    def __post_init__(self) -> None:
        check_limit_against_opencv(self.max_photo_pixels)
        if self.lanes is not None and self.lanes < 1:
            raise SpecError(f"--lanes must be at least 1, got {self.lanes}")
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

    def absorb(self, other: StageTimes) -> None:
        """Add another lane's busy times, photos and faces (not its wall time: the lanes ran side by side)."""
        for stage, seconds in other.seconds.items():
            self.seconds[stage] += seconds
        self.images += other.images
        self.faces += other.faces

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "images": self.images, "faces": self.faces, "wall": self.wall}


@dataclass
class PreparedPhoto:
    """What a reader thread hands the detector: the photo (decoded whole, or reduced: then
    ``full_size`` is larger than ``image`` and ``encoded`` holds its bytes), its frame and the scale
    from the frame to the photo's own pixels, or an error."""

    path: Path
    image: np.ndarray | None = None
    frame: np.ndarray | None = None
    scale: float = 1.0  # frame pixels per photo pixel
    error: str | None = None
    read_seconds: float = 0.0
    letterbox_seconds: float = 0.0
    full_size: tuple[int, int] | None = None  # height, width of the photo (None: image's own)
    encoded: np.ndarray | None = None  # the file's bytes, kept while ``image`` is reduced
    header: PhotoHeader | None = None  # what the file's header said, for the finer decodes of ``encoded``
    # finer decodes than ``image`` (by JPEG reduction, 1: whole), made when a face was too small in ``image``
    finer: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def photo_size(self) -> tuple[int, int]:
        assert self.image is not None
        return self.full_size or self.image.shape[:2]

    @property
    def reduction(self) -> float:
        """Photo pixels per pixel of ``image`` (1.0: decoded whole)."""
        return self.photo_size[0] / self.image.shape[0] if self.image is not None else 1.0

    @property
    def factor(self) -> int:
        """The JPEG reduction ``image`` was decoded at: 1, 2, 4 or 8 (libjpeg rounds sizes up, so
        ``reduction`` may be a hair under it)."""
        return round(self.reduction)

    def decoded_at(self, factor: int) -> np.ndarray:
        """The photo decoded at 1/``factor`` (1: whole), decoded on first use and kept beside ``image``:
        ``image`` and ``reduction`` never change, so a face aligns from the same pixels whether the
        photo's faces are aligned together or one at a time."""
        assert self.image is not None
        if factor == self.factor:
            return self.image
        if factor not in self.finer:
            try:
                decoded = (
                    decode_within(self.encoded, self.header, factor)
                    if self.encoded is not None and self.header is not None
                    else None
                )
            except PhotoRefused:
                decoded = None
            expected = tuple(-(-side // factor) for side in self.photo_size)
            if decoded is None or any(abs(a - b) > 1 for a, b in zip(decoded.shape[:2], expected, strict=True)):
                raise SpecError(f"image {self.path} cannot be decoded again (it changed while being read)")
            self.finer[factor] = decoded
        return self.finer[factor]

    def full_image(self) -> np.ndarray:
        """The photo decoded whole."""
        return self.decoded_at(1)


def prepare_photo(
    models: FaceModels,
    path: Path,
    image: np.ndarray | None = None,
    reduced_decode: bool = False,
    max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
) -> PreparedPhoto:
    """What a reader does with one photo (needs no runtime: Ray runs it as a task of its own). A large
    JPEG is decoded reduced (``decode_for_detector``) when ``reduced_decode``; a photo refused from its
    header (above ``max_pixels``, no size, a format not accepted) is never decoded: its error says why."""
    start = time.perf_counter()
    try:
        decoded = (
            decode_for_detector(path, models.detector_size if reduced_decode else None, max_pixels)
            if image is None
            else DecodedPhoto(image, image.shape[:2])
        )
    except FacebatchError as exc:
        return PreparedPhoto(path, error=str(exc), read_seconds=time.perf_counter() - start)
    read = time.perf_counter()
    frame, scale = detector_input(decoded.image, models.detector_size, models.detector.normalize)
    reduced = decoded.reduction > 1.0
    return PreparedPhoto(
        path,
        decoded.image,
        frame,
        scale / decoded.reduction,
        read_seconds=read - start,
        letterbox_seconds=time.perf_counter() - read,
        full_size=decoded.full_size if reduced else None,
        encoded=decoded.encoded if reduced else None,
        header=decoded.header if reduced else None,
    )


def _warp_from_decodes(photo: PreparedPhoto, matrices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A reduced photo's faces (``matrices``: photo pixels → crop), each warped from the most reduced
    decode on which its crop does not enlarge it (``REDUCED_ALIGN_MAX_SCALE``): the reduced image the
    detector saw, else 1/2, else the photo whole. Chosen per face, so a face's crop does not depend on
    which other faces are aligned with it."""
    crops = np.zeros((len(matrices), *size, 3), dtype=np.uint8)
    scales = transform_scale(on_reduced_image(matrices, photo.factor))
    room = photo.factor * REDUCED_ALIGN_MAX_SCALE / scales  # the largest factor each face fits at
    factors = np.array([max([1] + [f for f in (2, 4, 8) if f <= r and f <= photo.factor]) for r in room])
    for factor in np.unique(factors):
        chosen = factors == factor
        source = photo.decoded_at(int(factor))
        crops[chosen] = warp_faces(source, on_reduced_image(matrices[chosen], int(factor)), size)
    return crops


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
        self.other_lanes: list[FacePipeline] = []  # open_pipeline's further lanes, which run() shares photos with

    # -- the stages, on photos already in memory -------------------------------------------------
    def prepare(self, path: Path, image: np.ndarray | None = None) -> PreparedPhoto:
        """Read (unless given) and letterbox one photo; a photo that cannot be read is an error
        in its result, not an exception."""
        return prepare_photo(self.models, path, image, self.settings.reduced_decode, self.settings.max_photo_pixels)

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
                [p.photo_size for p in chunk],
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

    def align(self, photos: Sequence[PreparedPhoto], faces: Sequence[Detections]) -> np.ndarray:
        """Aligned crops [sum of faces, H, W, 3] of every face of every photo, in order: the transforms
        of all faces in one batched estimate; a reduced photo's face is warped from the reduced decode
        when its crop does not enlarge it (``REDUCED_ALIGN_MAX_SCALE``), else from a finer decode."""
        assert self.models.embedder is not None and self.template is not None
        began = time.perf_counter()
        size = self.models.embedder.input_size
        counts = [len(found) for found in faces]
        crops = np.zeros((sum(counts), *size, 3), dtype=np.uint8)
        if not len(crops):
            return crops
        matrices = similarity_transforms(np.concatenate([f.landmarks for f in faces if len(f)]), self.template)
        at = 0
        for photo, count in zip(photos, counts, strict=True):
            if not count:
                continue
            own = matrices[at : at + count]
            if photo.factor > 1:
                crops[at : at + count] = _warp_from_decodes(photo, own, size)
            else:
                crops[at : at + count] = warp_faces(photo.image, own, size)
            at += count
        self.times.add("align", time.perf_counter() - began)
        return crops

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
            vectors = self.embed(self.align(readable, faces))
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
            results.append(ImageFaces(p.path, p.photo_size, found, vectors))
            self.times.faces += len(found)
        self.times.images += len(prepared)
        return results

    def process(self, images: Sequence[np.ndarray], names: Sequence[Path] | None = None) -> list[ImageFaces]:
        """Photos already in memory, in one go."""
        names = names or [Path(f"image_{i}") for i in range(len(images))]
        return self.finish([self.prepare(name, image) for name, image in zip(names, images, strict=False)])

    # -- the streaming run ----------------------------------------------------------------------------
    def run(self, paths: Sequence[Path], on_result: Callable[[ImageFaces], None] | None = None) -> Iterator[ImageFaces]:
        """Every photo in ``paths``, in order: with other lanes, shared among them (``_run_in_lanes``);
        else readers prepare photos ahead while the detector and embedder work on the batch before.
        Yields one ``ImageFaces`` per photo."""
        if self.other_lanes:
            yield from self._run_in_lanes(paths, on_result)
            return
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

    def _run_in_lanes(
        self, paths: Sequence[Path], on_result: Callable[[ImageFaces], None] | None
    ) -> Iterator[ImageFaces]:
        """``run`` over several lanes: each lane takes the next chunk of photos, reads them itself and
        runs them on its own runtimes; results come out in the photos' order, and the lanes run at most
        ``LANE_CHUNKS_AHEAD`` chunks per lane ahead of what has been yielded. A chunk is
        ``detect_batch`` photos, or fewer where that leaves a lane under ``LANE_MIN_CHUNKS`` chunks: a
        runtime on one thread gains nothing from larger batches, and the last chunks leave lanes idle
        (17 photos on 2 lanes: chunks of 8 ran 9.9 photos/s, of 2 11.3)."""
        began = time.perf_counter()
        lanes = [self, *self.other_lanes]
        size = max(1, min(self.detect_batch, -(-len(paths) // (len(lanes) * LANE_MIN_CHUNKS))))
        chunks = [paths[start : start + size] for start in range(0, len(paths), size)]
        done: dict[int, list[ImageFaces] | BaseException] = {}
        progress = {"taken": 0, "yielded": 0, "stop": False}
        changed = threading.Condition()

        def work(lane: FacePipeline) -> None:
            while True:
                with changed:
                    while (
                        not progress["stop"]
                        and progress["taken"] < len(chunks)
                        and progress["taken"] - progress["yielded"] >= LANE_CHUNKS_AHEAD * len(lanes)
                    ):
                        changed.wait()
                    if progress["stop"] or progress["taken"] >= len(chunks):
                        return
                    index = progress["taken"]
                    progress["taken"] += 1
                try:
                    result: list[ImageFaces] | BaseException = lane.finish([lane.prepare(p) for p in chunks[index]])
                except BaseException as exc:  # handed to the caller's thread, in order
                    result = exc
                with changed:
                    done[index] = result
                    changed.notify_all()

        workers = [
            threading.Thread(target=work, args=(lane,), name=f"facebatch-lane-{number}", daemon=True)
            for number, lane in enumerate(lanes)
        ]
        for worker in workers:
            worker.start()
        try:
            for index in range(len(chunks)):
                with changed:
                    while index not in done:
                        changed.wait()
                    result = done.pop(index)
                    progress["yielded"] = index + 1
                    changed.notify_all()
                if isinstance(result, BaseException):
                    raise result
                for photo in result:
                    if on_result is not None:
                        on_result(photo)
                    yield photo
        finally:  # finished, failed, interrupted or abandoned: the lanes stop after the chunk in hand
            with changed:
                progress["stop"] = True
                changed.notify_all()
            for worker in workers:
                worker.join()
            for lane in self.other_lanes:
                self.times.absorb(lane.times)
                lane.times = StageTimes()
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
    runs ONNX, in ``lane_plan``'s lanes (each its own runners; ``run`` shares the photos among them,
    the stage methods run on the first); its runners live as long as the ``with`` block."""
    size = detector.checked_size(detector_size)
    models = FaceModels(detector.spec, size, embedder.spec if embedder is not None else None)
    settings = settings or PipelineSettings()
    options = runner_options or RunnerOptions(
        spin_wait=False
    )  # two sessions take turns: spinning threads would slow each other
    lanes, threads = lane_plan(settings.lanes, backend, options.threads)
    options = dataclasses.replace(options, threads=threads)
    with contextlib.ExitStack() as stack:
        pipelines = []
        for _ in range(lanes):
            det_runner = stack.enter_context(onnx_runner(backend, detector.path, detector.spec, size, options))
            emb_runner = None
            if embedder is not None:
                emb_runner = stack.enter_context(
                    onnx_runner(backend, embedder.path, embedder.spec, embedder.spec.input_size, options)
                )
            pipelines.append(FacePipeline(models, det_runner, emb_runner, settings))
        pipelines[0].other_lanes = pipelines[1:]
        yield pipelines[0]


def lane_plan(lanes: int | None, backend: str, threads: int | None) -> tuple[int, int | None]:
    """How many lanes, and runtime threads per lane (None: the runtime's default). On onnxruntime's
    CPU provider by default one lane per physical core, each runtime on 1 thread: on 2 cores two such
    lanes ran 10.3 photos/s on 12 MP photos where one pipeline with 2-thread runtimes and 2 reader
    threads ran 7.7 (its readers pre-empt one of the runtime's two threads, and every operator waits
    for it); on the fixture photos each twice 12.8 against 11.1, on them once even (one photo holds
    most faces; docs/pipeline.md, lever 4). ``--threads`` alone sets the lanes to the cores it leaves
    (cores // threads); ``--lanes`` alone shares the cores among them. OpenVINO runs lanes when asked
    (``DEFAULT_LANE_BACKENDS``), GPU backends one (``LANE_BACKENDS``). Beyond ``MAX_DEFAULT_LANES`` cores the lanes' runtimes share them as threads
    (not measured here: more lanes hold more sessions in memory; ``bench --pipeline --lanes`` tells)."""
    if backend not in LANE_BACKENDS or (lanes is None and backend not in DEFAULT_LANE_BACKENDS):
        return 1, threads
    cores = physical_cores()
    if lanes is None:
        lanes = min(MAX_DEFAULT_LANES, max(1, cores // threads) if threads else cores)
    return lanes, threads or max(1, cores // lanes)


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
