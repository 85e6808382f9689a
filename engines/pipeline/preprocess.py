"""Image loading and SCRFD preprocessing, exactly as insightface's SCRFD.detect.

Plus ``proof_frames``: distinct frames (real photos first, then seeded structured noise)
for parity and batch-independence checks. Never identical copies: they hide bugs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import Normalize
from facebatch.errors import SpecError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def decode_image(data: bytes | np.ndarray) -> np.ndarray | None:
    """Encoded bytes → HWC uint8 BGR, or None when they are not a whole image. Converted the
    way ``cv2.imread`` converts (insightface reads with it): grayscale → BGR, 16-bit → 8-bit,
    alpha dropped, EXIF orientation applied. ``imdecode`` rather than ``imread``: it refuses a
    truncated JPEG (``imread`` fills the rest with gray) and prints nothing."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if buffer.size == 0:
        return None
    return cv2.imdecode(buffer, cv2.IMREAD_COLOR)


def load_image(path: Path) -> np.ndarray:
    """HWC uint8 BGR (see ``decode_image``); a missing or undecodable file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"image {path} does not exist")
    try:
        image = decode_image(np.fromfile(path, dtype=np.uint8))
    except OSError as exc:
        raise SpecError(f"image {path} cannot be read: {exc.strerror}") from None
    if image is None:
        raise SpecError(
            f"image {path} cannot be decoded (not an image, or truncated); pass a JPEG, PNG, BMP or WebP file"
        )
    return image


def image_files(path: Path) -> list[Path]:
    """The photos a path names: the file itself, or a folder's images in name order."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SpecError(
                f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); pass a photo or a folder of photos"
            )
        return [path]
    if not path.is_dir():
        raise SpecError(f"{path} does not exist; pass a photo or a folder of photos")
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Every photo the arguments name, in their order (a folder's in name order), each once;
    a file named outright is taken whatever its suffix (if it does not decode, the pipeline
    says so and goes on); refuses paths that do not exist and arguments that name nothing."""
    found: list[Path] = []
    for path in map(Path, paths):
        found += [path] if path.is_file() else image_files(path)
    if not found:
        named = ", ".join(str(p) for p in paths)
        raise SpecError(f"no images found in {named} ({', '.join(IMAGE_SUFFIXES)}); pass photos or folders of photos")
    return list(dict.fromkeys(found))


def letterbox(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float]:
    """Keep-ratio resize into a zero canvas at the top-left; returns (canvas, scale)."""
    im_ratio = image.shape[0] / image.shape[1]
    if im_ratio > height / width:
        new_h, new_w = height, int(height / im_ratio)
    else:
        new_w, new_h = width, int(width * im_ratio)
    scale = new_h / image.shape[0]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, scale


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
) -> np.ndarray:
    """``count`` distinct preprocessed frames: the photos (cycled never; each once), then noise.
    ``fit``: "letterbox" (detectors) or "center" (embedders: a centred crop)."""
    images = [load_image(p) for p in list(photos)[:count]]
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
