"""The readers: a photo read, decoded (whole, or reduced for the detector) and letterboxed into a
``PreparedPhoto`` (needs no runtime: Ray runs it as a task of its own), and ``prefetched``, the
thread pool that prepares the next photos while the runtimes work on the batch before (OpenCV
releases the GIL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.pipeline.face_detect import detector_input
from facebatch.engines.pipeline.image_header import DEFAULT_MAX_PHOTO_PIXELS, PhotoHeader, PhotoRefused
from facebatch.engines.pipeline.options import FaceModels
from facebatch.engines.pipeline.preprocess import DecodedPhoto, decode_for_detector, decode_within

PREFETCH_BATCHES = 2  # how many detection batches the readers may run ahead


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
    error_field: str | None = None  # the option that would let it through (max_photo_pixels), where one would
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
        return PreparedPhoto(path, error=str(exc), error_field=exc.field, read_seconds=time.perf_counter() - start)
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


def prefetched(
    paths: Sequence[Path], prepare: Callable[[Path], PreparedPhoto], batch: int, workers: int
) -> Iterator[list[PreparedPhoto]]:
    """``paths`` prepared, ``batch`` photos at a time and in order: ``workers`` reader threads prepare
    up to ``PREFETCH_BATCHES`` batches ahead of the one in hand (0: each batch in the calling thread,
    nothing overlaps). Close it (``contextlib.closing``) to stop the readers when the caller stops early."""
    if workers == 0:
        for start in range(0, len(paths), batch):
            yield [prepare(p) for p in paths[start : start + batch]]
        return
    window = batch * PREFETCH_BATCHES
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facebatch-read") as pool:
        pending: list[Future[PreparedPhoto]] = []
        queued = 0

        def top_up() -> None:
            nonlocal queued
            while queued < len(paths) and len(pending) < window:
                pending.append(pool.submit(prepare, paths[queued]))
                queued += 1

        while queued < len(paths) or pending:
            top_up()
            ready = [future.result() for future in pending[:batch]]
            del pending[:batch]
            top_up()  # keep the readers busy during inference
            yield ready
