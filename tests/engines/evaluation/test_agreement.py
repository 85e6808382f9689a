"""Do two runs find the same faces? Problems are listed per face, differences counted per photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facebatch.engines.evaluation.agreement import compare_runs
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.scrfd_decode import Detections


def photo(name: str, boxes: list[list[float]], shift: float = 0.0) -> ImageFaces:
    array = np.asarray(boxes, np.float32) + shift
    marks = np.repeat(array[:, None, :2], 5, axis=1)
    vectors = np.eye(len(boxes), 4, dtype=np.float32)
    return ImageFaces(Path(name), (480, 640), Detections(array, np.ones(len(boxes), np.float32), marks), vectors)


def test_differences_are_listed_per_face_and_counted_per_photo():
    boxes = [[10, 10, 60, 60], [100, 100, 150, 150], [200, 200, 260, 260]]
    ours = [photo("crowd.jpg", boxes, shift=2.0), photo("pair.jpg", boxes[:2]), photo("alone.jpg", boxes[:1])]
    theirs = [photo("crowd.jpg", boxes), photo("pair.jpg", boxes[:1]), photo("alone.jpg", boxes[:1])]
    agreement = compare_runs("ours vs theirs", ours, theirs)
    assert len(agreement.problems) == 4  # three faces of crowd.jpg 2 px away, pair.jpg's face count
    assert agreement.differing == {"crowd.jpg", "pair.jpg"} and not agreement.passed
    assert "DIFFERENT on 2 photos" in agreement.summary()
    assert agreement.to_dict()["photos_differing"] == ["crowd.jpg", "pair.jpg"]
    same = compare_runs("again", theirs, theirs)
    assert same.passed and same.differing == set() and "same faces" in same.summary()
