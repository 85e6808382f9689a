"""Image loading and SCRFD preprocessing, exactly as insightface's SCRFD.detect.

Plus ``proof_frames``: distinct frames (real photos first, then seeded structured noise)
for parity and batch-independence checks. Never identical copies: they hide bugs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import Normalize
from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import printable
from facebatch.engines.pipeline.image_header import (
    ACCEPTED,
    DEFAULT_MAX_PHOTO_PIXELS,
    HEADER_WINDOW_BYTES,
    PhotoHeader,
    PhotoRefused,
    checked_header,
    file_size_problem,
    what_to_change,
)

# libjpeg decodes straight to 1/2, 1/4 or 1/8 of the size (it drops DCT coefficients: 2–8× less work
# than a full decode, and an area-like downscale); other formats would decode whole and resize
JPEG_REDUCTIONS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def _buffer(data: bytes | np.ndarray) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data


def decode_within(data: bytes | np.ndarray, header: PhotoHeader, factor: int = 1) -> np.ndarray | None:
    """Encoded bytes whose ``header`` was checked → HWC uint8 BGR at 1/``factor`` (1: whole; 2, 4, 8:
    a JPEG reduced by libjpeg), or None when they are not a whole image. Converted the way
    ``cv2.imread`` converts (insightface reads with it): grayscale → BGR, 16-bit → 8-bit, alpha
    dropped, EXIF orientation applied. ``imdecode`` rather than ``imread``: it refuses a truncated
    JPEG (``imread`` fills the rest with gray) and prints nothing. A decode larger than the header
    said (either way round) is refused: the header is what the limit was checked against."""
    try:
        image = cv2.imdecode(_buffer(data), cv2.IMREAD_COLOR if factor == 1 else JPEG_REDUCTIONS[factor])
    except cv2.error:  # OpenCV raises for some refusals (its own pixel cap, an assertion in a decoder)
        return None
    if image is not None and not header.holds(image.shape[:2], factor):
        height, width = image.shape[:2]
        raise PhotoRefused(
            f"is not a whole image: it decoded to {width}x{height}, larger than the "
            f"{header.width}x{header.height} its header gives"
        )
    return image


FIRST_HEADER_BYTES = 2**20  # read first; a header beyond it (long EXIF, ICC, a TIFF's IFD) reads the whole window


def read_photo(path: Path, max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS) -> tuple[np.ndarray, PhotoHeader]:
    """A photo file's bytes and its header, read fail-closed: the header from the file's first MB, or
    its first ``HEADER_WINDOW_BYTES`` where it lies further in (refused as ``checked_header`` refuses),
    then the rest only when the file is no larger than its pixels can need (``file_size_problem``).
    Nothing larger than the window is allocated before those checks. A missing, unreadable or
    not-regular file is a clear error."""
    path = Path(path)
    shown = printable(str(path))
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SpecError(f"image {shown} is not a regular file")
            window, header = b"", None
            for size in (FIRST_HEADER_BYTES, HEADER_WINDOW_BYTES):
                window += handle.read(min(info.st_size, size) - len(window))
                header, refusal = _header_within(window, info.st_size, max_pixels)
                if header is not None or refusal is None or not refusal.no_size or len(window) == info.st_size:
                    break
            if refusal is not None:
                raise _refused(path, refusal)
            data = bytearray(info.st_size)
            data[: len(window)] = window
            read = len(window) + _read_into(handle, memoryview(data)[len(window) :])
    except FileNotFoundError:
        raise SpecError(f"image {shown} does not exist") from None
    except OSError as exc:
        raise SpecError(f"image {shown} cannot be read: {exc.strerror or exc}") from None
    assert header is not None
    return np.frombuffer(data, dtype=np.uint8)[:read], header


def _header_within(window: bytes, size: int, max_pixels: int) -> tuple[PhotoHeader | None, PhotoRefused | None]:
    """The header ``window`` gives, or why the photo is refused (its header, or a file larger than it can need)."""
    try:
        header = checked_header(window, max_pixels)
    except PhotoRefused as refusal:
        return None, refusal
    refusal = file_size_problem(header, size)
    return (header, None) if refusal is None else (None, refusal)


def _read_into(handle, view: memoryview) -> int:  # BinaryIO
    """Fill ``view`` from ``handle`` (a short count: the file shrank while it was read)."""
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            break
        done += count
    return done


def _held_photo(name: Path, encoded: bytes, max_pixels: int) -> tuple[np.ndarray, PhotoHeader]:
    """A photo file's bytes held in memory, and their header, refused as ``read_photo`` refuses a file's."""
    header, refusal = _header_within(encoded, len(encoded), max_pixels)
    if refusal is not None:
        raise _refused(name, refusal)
    assert header is not None
    return np.frombuffer(encoded, dtype=np.uint8), header


def _undecodable(path: Path) -> SpecError:
    return SpecError(
        f"image {printable(str(path))} is not a whole image: it cannot be decoded (truncated or corrupt); "
        f"pass a whole {ACCEPTED} file"
    )


def _refused(path: Path, refusal: PhotoRefused) -> SpecError:
    """A photo refused before (or instead of) decoding, named, with what to change (a photo above the
    limit: the limit, ``max_photo_pixels``, is the field)."""
    return SpecError(
        f"image {printable(str(path))} {refusal}; {what_to_change(refusal, served=False)}",
        field="max_photo_pixels" if refusal.too_large else None,
    )


def _decoded(path: Path, data: np.ndarray, header: PhotoHeader, factor: int = 1) -> np.ndarray:
    try:
        image = decode_within(data, header, factor)
    except PhotoRefused as refusal:
        raise _refused(path, refusal) from None
    if image is None:
        raise _undecodable(path)
    return image


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS) -> np.ndarray:
    """HWC uint8 BGR (see ``decode_within``); a missing or undecodable file, or one refused from its
    header (no size, a format not accepted, more than ``max_pixels``), is a clear error."""
    data, header = read_photo(path, max_pixels)
    return _decoded(path, data, header)


def jpeg_reduction(width: int, height: int, target: tuple[int, int]) -> int:
    """The largest of 1, 2, 4, 8 by which a ``width``×``height`` photo can be decoded and still be at
    least as large as its letterbox into ``target`` (height, width): the letterbox then only ever
    shrinks it further, as it shrinks the full decode. Either orientation (EXIF may turn it)."""
    scale = max(min(target[0] / height, target[1] / width), min(target[0] / width, target[1] / height))
    return max([1] + [k for k in JPEG_REDUCTIONS if scale * k <= 1.0])


def on_reduced_image(matrices: np.ndarray, factor: int) -> np.ndarray:
    """Affine maps [n, 2, 3] from a photo's pixels to crops, as maps from its 1/``factor`` JPEG decode:
    a decoded pixel r averages photo pixels factor·r … factor·r + factor − 1, so it stands at
    factor·r + (factor − 1)/2 of the photo."""
    moved = matrices.astype(np.float64, copy=True)
    moved[:, :, 2] += moved[:, :, :2].sum(axis=2) * (factor - 1) / 2
    moved[:, :, :2] *= factor
    return moved


@dataclass(frozen=True)
class DecodedPhoto:
    """A photo as the detector needs it: decoded whole, or reduced by libjpeg (``reduction`` > 1),
    with the photo's own size, its header and, when reduced, its bytes for a full decode later
    (alignment of faces too small in the reduced image)."""

    image: np.ndarray  # HWC uint8 BGR, possibly reduced
    full_size: tuple[int, int]  # the photo's height, width at full size, EXIF orientation applied
    encoded: np.ndarray | None = None  # the file's bytes when ``image`` is reduced
    header: PhotoHeader | None = None  # what its header said (checked against the pixel limit)

    @property
    def reduction(self) -> float:
        """Photo pixels per pixel of ``image`` (1.0: decoded whole)."""
        return self.full_size[0] / self.image.shape[0]


def decode_for_detector(
    path: Path, target: tuple[int, int] | None, max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS, encoded: bytes | None = None
) -> DecodedPhoto:
    """Read a photo for a detector of input ``target`` (height, width): a JPEG at least twice the
    letterbox's size is decoded reduced (``jpeg_reduction``); anything else whole. ``target`` None:
    whole. Refused from its header (no size, a format not accepted, above ``max_pixels``) before
    anything is decoded; errors as ``load_image``'s. ``encoded``: the photo's bytes, held by the caller
    (``path`` names them), checked and decoded as a file's."""
    data, header = read_photo(path, max_pixels) if encoded is None else _held_photo(path, encoded, max_pixels)
    factor = jpeg_reduction(header.width, header.height, target) if target and header.format == "JPEG" else 1
    image = _decoded(path, data, header, factor)
    if factor == 1:
        return DecodedPhoto(image, image.shape[:2], header=header)
    width, height = header.width, header.height
    # libjpeg's reduced size is the full size / factor rounded up; a turned photo swaps them
    upright = abs(image.shape[0] - -(-height // factor)) <= 1 and abs(image.shape[1] - -(-width // factor)) <= 1
    return DecodedPhoto(image, (height, width) if upright else (width, height), data, header)


def letterbox_size(image_hw: tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """(new_h, new_w) of insightface's keep-ratio letterbox of an ``image_hw`` image."""
    im_ratio = image_hw[0] / image_hw[1]
    if im_ratio > height / width:
        return height, int(height / im_ratio)
    return int(width * im_ratio), width


def letterbox(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float]:
    """Keep-ratio resize into a zero canvas at the top-left; returns (canvas, scale). The resize
    writes straight into the canvas (no intermediate image to copy)."""
    new_h, new_w = letterbox_size(image.shape[:2], height, width)
    scale = new_h / image.shape[0]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    placed = cv2.resize(image, (new_w, new_h), dst=canvas[:new_h, :new_w])
    if not np.shares_memory(placed, canvas):  # OpenCV wrote elsewhere (an image it had to convert first)
        canvas[:new_h, :new_w] = placed
    return canvas, scale


def letterboxed_blob(image: np.ndarray, height: int, width: int, normalize: Normalize) -> tuple[np.ndarray, float]:
    """One photo → its letterboxed, normalised CHW float32 frame and scale: the resize into the
    canvas, then one normalising pass (measured on the fixtures: 24 ms per 17 photos; normalising
    the resized photo alone into a pre-filled frame was 44 ms, its two float passes cost more
    than the padding they skip)."""
    canvas, scale = letterbox(image, height, width)
    return blob_from_images([canvas], normalize)[0], scale


def blob_from_images(images: np.ndarray | Sequence[np.ndarray], normalize: Normalize) -> np.ndarray:
    """HWC uint8 BGR images of one size → NCHW float32 ``(pixel - mean) / std`` in the model's
    colour order. OpenCV's ``blobFromImages`` (what insightface calls) when one std serves all
    channels: one pass in C++, several times faster than numpy, and the same numbers to an
    ulp; ``Normalize.apply_batch`` otherwise."""
    if len(images) == 0:
        raise SpecError("no images to normalise")
    if len(set(normalize.std)) != 1:
        return normalize.apply_batch(np.stack(list(images)))
    height, width = images[0].shape[:2]
    blob = cv2.dnn.blobFromImages(
        list(images), 1.0 / normalize.std[0], (width, height), normalize.mean, swapRB=normalize.rgb, crop=False
    )
    return np.ascontiguousarray(blob, dtype=np.float32)


def detector_blob(images: Sequence[np.ndarray], height: int, width: int, normalize: Normalize) -> np.ndarray:
    """Letterboxed, normalised NCHW float32 batch."""
    return np.stack([normalize.apply(letterbox(img, height, width)[0]) for img in images])


def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The largest centred crop with the target's aspect ratio, resized to it (embedder inputs
    when no landmarks are at hand: the face usually sits near the middle of a portrait)."""
    h, w = image.shape[:2]
    crop_h, crop_w = (
        (h, max(1, round(h * width / height))) if w * height > h * width else (max(1, round(w * height / width)), w)
    )
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    return cv2.resize(image[top : top + crop_h, left : left + crop_w], (width, height), interpolation=cv2.INTER_AREA)


def noise_image(height: int, width: int, seed: int) -> np.ndarray:
    """Seeded structured noise: coarse colour blobs plus fine grain, so that activations look
    more like a photo's than white noise does."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-24, 25, (height, width, 3), dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def frame_sources(count: int, photos: Sequence[Path] = (), seed: int = 0) -> list[str]:
    """What each of ``proof_frames``' frames is, by index: a photo's name or a noise seed."""
    named = [Path(p).name for p in list(photos)[:count]]
    return named + [f"noise (seed {seed + i})" for i in range(count - len(named))]


def proof_frames(
    count: int,
    height: int,
    width: int,
    normalize: Normalize,
    photos: Sequence[Path] = (),
    seed: int = 0,
    fit: str = "letterbox",
    max_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
) -> np.ndarray:
    """``count`` distinct preprocessed frames: the photos (cycled never; each once), then noise.
    ``fit``: "letterbox" (detectors) or "center" (embedders: a centred crop). A photo is read as
    ``load_image`` reads it (refused above ``max_pixels``, in one line)."""
    images = [load_image(p, max_pixels) for p in list(photos)[:count]]
    images += [noise_image(height, width, seed + i) for i in range(count - len(images))]
    if fit == "center":
        return np.stack([normalize.apply(center_crop(img, height, width)) for img in images])
    if fit != "letterbox":
        raise SpecError(f"unknown frame fit {fit!r}; use 'letterbox' or 'center'")
    return detector_blob(images, height, width, normalize)


def model_frames(
    model: ModelFile, size: tuple[int, int], count: int, photos: Sequence[Path] = (), seed: int = 0
) -> np.ndarray:
    """``count`` distinct frames the way ``model`` takes them at ``size``: photos letterboxed for
    detectors or centre-cropped for embedders, then seeded noise."""
    fit = "center" if model.family.is_embedder else "letterbox"
    return proof_frames(count, size[0], size[1], model.spec.normalize, photos, seed, fit=fit)
