"""A folder of large photos made from a folder of small ones (``make large-photos``), for measuring
the face pipeline where users' photos are: 12 MP phone JPEGs rather than VGA fixtures.

Each photo is upscaled (bicubic) to a long side of ``--long-side`` pixels and written as a JPEG of
quality 92 (a phone camera's); the hand-labelled boxes of ``faces_ground_truth.json`` are scaled
with it, so labelled recall is judged on the large folder as on the small one. An upscaled photo
holds no more detail than its source: it costs what a large photo costs to decode and letterbox,
which is what the folder is for, and says so in its ground-truth file's ``made_from``.

    python -m facebatch.engines.bench.large_photos --images ../shared/fixtures/images --out build/large_photos
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from facebatch.core.atomic import ensure_writable_dir, write_bytes_atomic, write_text_atomic
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.progress import progress_bar
from facebatch.engines.evaluation.agreement import GROUND_TRUTH
from facebatch.engines.pipeline.photo_files import image_files
from facebatch.engines.pipeline.preprocess import load_image

LONG_SIDE = 4000  # a 12 MP photo's long side (4000 × 3000)
JPEG_QUALITY = 92


def make_large_photos(images: Path, out: Path, long_side: int = LONG_SIDE) -> list[Path]:
    """Upscale every photo of ``images`` to ``long_side`` into ``out`` as JPEG, with the ground truth scaled."""
    photos = image_files(images)
    if not photos:
        raise SpecError(f"{images} holds no photos; pass a folder of JPEG or PNG files")
    ensure_writable_dir(out)
    truth_file = Path(images) / GROUND_TRUTH
    truth = json.loads(truth_file.read_text()).get("images", {}) if truth_file.is_file() else {}
    scaled: dict[str, list[list[float]]] = {}
    made = []
    with progress_bar(len(photos), "large photos") as advance:
        for photo in photos:
            image = load_image(photo)
            factor = long_side / max(image.shape[:2])
            large = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            ok, encoded = cv2.imencode(".jpg", large, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise SpecError(f"{photo.name} could not be encoded as JPEG at {large.shape[1]}×{large.shape[0]}")
            target = out / f"{photo.stem}.jpg"
            write_bytes_atomic(target, encoded.tobytes())
            made.append(target)
            if photo.name in truth:
                boxes = np.asarray(truth[photo.name], np.float64).reshape(-1, 4) * factor
                scaled[target.name] = np.round(boxes, 1).tolist()
            advance(target.name)
    if truth:
        document = {
            "format": "boxes as [x1, y1, x2, y2] in pixels, hand-labelled on the source photos and scaled",
            "made_from": f"{Path(images).resolve()} upscaled (bicubic) to a long side of {long_side} px, JPEG q{JPEG_QUALITY}",
            "images": scaled,
        }
        write_text_atomic(out / GROUND_TRUTH, json.dumps(document, indent=1) + "\n")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facebatch.engines.bench.large_photos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--images", type=Path, required=True, help="the folder of photos to upscale")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write the large JPEGs into")
    parser.add_argument(
        "--long-side", type=int, default=LONG_SIDE, help=f"pixels of the long side (default {LONG_SIDE})"
    )
    args = parser.parse_args(argv)
    try:
        made = make_large_photos(args.images, args.out, args.long_side)
    except (FacebatchError, OSError) as exc:
        print(f"large-photos: {exc}", file=sys.stderr)
        return 2
    print(f"{len(made)} photos, long side {args.long_side} px → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
