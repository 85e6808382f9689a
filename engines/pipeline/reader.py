"""The readers: a photo read, decoded (whole, or reduced for the detector) and letterboxed into a
``PreparedPhoto`` (needs no runtime: Ray runs it as a task of its own), and ``prefetched``, the
thread pool that prepares the next photos while the runtimes work on the batch before (OpenCV
releases the GIL).

A photo is a file, or one the caller holds (``InMemoryPhoto``): decoded (a BGR uint8 HxWx3 array, as
``cv2.imread`` and insightface's ``FaceAnalysis.get`` take) or encoded (the file's bytes). ``photo_items`` checks
what a caller passes, before any work; an in-memory photo is named ``photos[i]`` by its place in the call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.trusted_paths import printable
from facebatch.engines.pipeline.face_detect import detector_input
from facebatch.engines.pipeline.image_header import (
    DEFAULT_MAX_PHOTO_PIXELS,
    PhotoHeader,
    PhotoRefused,
    megapixels,
    what_to_change,
)
from facebatch.engines.pipeline.options import FaceModels
from facebatch.engines.pipeline.photo_files import collect_images
from facebatch.engines.pipeline.preprocess import DecodedPhoto, decode_for_detector, decode_within, load_image

PREFETCH_BATCHES = 2  # how many detection batches the readers may run ahead
ACCEPTED_ITEMS = "a path, a photo file's bytes, or a decoded BGR uint8 array of shape (height, width, 3)"


@dataclass(frozen=True)
class InMemoryPhoto:
    """A photo the caller holds: ``image`` decoded (BGR uint8 HxWx3) or ``encoded`` (a photo file's bytes);
    ``index``: its place among the photos of the call, which names it (``photos[2]``)."""

    index: int
    image: np.ndarray | None = None
    encoded: bytes | None = None

    @property
    def path(self) -> Path:
        """Its name in results and messages: not a file."""
        return Path(f"photos[{self.index}]")


PhotoItem = Path | InMemoryPhoto  # what the readers take


def photo_item(item: object, index: int, folders: bool = False) -> PhotoItem:
    """One thing a caller passed as a photo, checked: a path (a str must name an existing file, or folder where
    ``folders``), encoded bytes, or a decoded BGR uint8 HxWx3 array; anything else is refused naming it
    (``photos[index]``) and what is taken."""
    where = f"photos[{index}]"
    if isinstance(item, InMemoryPhoto | Path):
        return item
    if isinstance(item, str):
        if not (Path(item).is_file() or (folders and Path(item).is_dir())):
            raise SpecError(
                f"{where} is the string {item[:80]!r}, which names no file; give {ACCEPTED_ITEMS}", field="photos"
            )
        return Path(item)
    if isinstance(item, bytes | bytearray | memoryview):
        return InMemoryPhoto(index, encoded=bytes(item))
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3 or 0 in item.shape:
            raise SpecError(
                f"{where} is a {item.dtype} array of shape {item.shape}; give a decoded BGR uint8 array of shape "
                "(height, width, 3) (cv2.imread's; a PIL image: np.asarray(img.convert('RGB'))[:, :, ::-1]), "
                "a path or a photo file's bytes",
                field="photos",
            )
        return InMemoryPhoto(index, image=item)
    raise SpecError(f"{where} is a {type(item).__name__}; give {ACCEPTED_ITEMS}", field="photos")


def photo_items(items: Sequence[object], folders: bool = False) -> list[PhotoItem]:
    """What a caller passed as photos, each checked (``photo_item``), in order; a lone str, bytes or array is
    refused (a sequence of photos is taken)."""
    if isinstance(items, str | bytes | bytearray | memoryview | np.ndarray | Path):
        raise SpecError(f"photos is one {type(items).__name__}, not a list of photos: pass [photo]", field="photos")
    return [photo_item(item, index, folders) for index, item in enumerate(items)]


def collect_photos(items: Sequence[object]) -> list[PhotoItem]:
    """The photos a caller names (``photo_items``), each folder walked in its place (``collect_images``: with
    its subfolders; each file once); photos held in memory stay where they were given."""
    checked = photo_items(items, folders=True)
    if all(isinstance(item, Path) for item in checked):
        return list(collect_images(checked, field="photos"))
    found: list[PhotoItem] = []
    for item in checked:
        if isinstance(item, InMemoryPhoto):
            found.append(item)
        elif item not in found:
            found += [p for p in collect_images([item], field="photos") if p not in found]
    return found


def photo_pixels(item: PhotoItem, max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS) -> np.ndarray:
    """A photo decoded whole, BGR (what an annotated copy is drawn on)."""
    if isinstance(item, InMemoryPhoto):
        return (
            item.image
            if item.image is not None
            else decode_for_detector(item.path, None, max_pixels, item.encoded).image
        )
    return load_image(item, max_pixels)


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
    path: PhotoItem,
    image: np.ndarray | None = None,
    reduced_decode: bool = False,
    max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
) -> PreparedPhoto:
    """What a reader does with one photo, a file or an ``InMemoryPhoto`` (needs no runtime: Ray runs it as a
    task of its own). A large JPEG is decoded reduced (``decode_for_detector``) when ``reduced_decode``; a
    photo refused from its header (above ``max_pixels``, no size, a format not accepted) is never decoded, a
    decoded one above ``max_pixels`` not run: its error says why."""
    start = time.perf_counter()
    if isinstance(path, InMemoryPhoto):
        path, image, encoded = path.path, path.image, path.encoded
    else:
        encoded = None
    try:
        decoded = (
            decode_for_detector(path, models.detector_size if reduced_decode else None, max_pixels, encoded)
            if image is None
            else _held(path, image, max_pixels)
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


def _held(name: Path, image: np.ndarray, max_pixels: int) -> DecodedPhoto:
    """A decoded photo the caller holds, within the pixel limit a file is held to."""
    height, width = image.shape[:2]
    if height * width > max_pixels:
        refusal = PhotoRefused(
            f"is {width}x{height} ({megapixels(height * width)} MP), above the limit of {megapixels(max_pixels)} MP",
            too_large=True,
        )
        shown = printable(str(name))
        raise SpecError(f"image {shown} {refusal}; {what_to_change(refusal, served=False)}", field="max_photo_pixels")
    return DecodedPhoto(image, (height, width))


def prefetched(
    paths: Sequence[PhotoItem], prepare: Callable[[PhotoItem], PreparedPhoto], batch: int, workers: int
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
