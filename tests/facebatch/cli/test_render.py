"""What a person reads from detect and embed: photos in natural order (img1, img2, img10), a table cut at 40
rows that says how to see the rest, and busy time per stage that says why it can exceed the wall time."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
from rich.console import Console

from facebatch.cli.render import FACE_ROWS, show_faces
from facebatch.engines.pipeline.image_faces import ImageFaces, StageTimes
from facebatch.engines.pipeline.scrfd_decode import Detections


def one_face(name: str) -> ImageFaces:
    faces = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.9], np.float32))
    return ImageFaces(Path("photos") / name, (100, 80), faces)


def shown(results: list[ImageFaces], times: StageTimes, rows: int | None = FACE_ROWS) -> list[str]:
    out = io.StringIO()
    show_faces(Console(file=out, width=200), results, times, rows)
    return out.getvalue().splitlines()


def photo_rows(lines: list[str]) -> list[str]:
    return [line.split("│")[1].strip() for line in lines if line.startswith("│ img")]


def test_the_table_is_in_natural_order_and_says_how_to_see_the_rows_it_cut():
    """Before: img1, img10, img11 …; '… and 5 more photos' with no way to see them."""
    names = [f"img{i}.jpg" for i in range(1, 46)]
    results = [one_face(n) for n in random.Random(0).sample(names, len(names))]
    times = StageTimes(images=45, faces=45, wall=2.0)
    lines = shown(results, times)
    assert photo_rows(lines) == names[:40] and "5 more rows: --all" in lines
    lines = shown(results, times, rows=None)
    assert photo_rows(lines) == names and not any("more rows" in line for line in lines)


def test_busy_time_past_the_wall_time_is_explained():
    times = StageTimes(images=2, faces=2, wall=1.0)
    for stage in times.seconds:
        times.add(stage, 0.6)
    lines = shown([one_face("img1.jpg"), one_face("img2.jpg")], times)
    assert "add up past the wall time" in lines[-1] and "busy per stage" in lines[-2]
    quiet = StageTimes(images=1, faces=1, wall=10.0)
    assert "past the wall time" not in shown([one_face("img1.jpg")], quiet)[-1]
