"""Which photos a command takes: the files and folders a caller names, as photo files (a folder's in name
order), each once. Light: no OpenCV, so the command line can use it while it parses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facebatch.core.errors import SpecError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


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


def proof_photos(paths: Sequence[Path], field: str = "photos") -> list[Path]:
    """The photos ``paths`` name for a proof (calibration, frames), each a photo or a folder of photos (its
    photos in name order), each once; refused in one line, about ``field``, when a path names none."""
    found: list[Path] = []
    for path in map(Path, paths):
        try:
            photos = image_files(path)
        except SpecError as exc:
            raise SpecError(f"{field}: {exc}", field=field) from None
        if not photos:
            raise SpecError(f"{field} {path} holds no .jpg/.png files", field=field)
        found += photos
    return list(dict.fromkeys(found))


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
