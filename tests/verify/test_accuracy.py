"""The accuracy measures on small hand-made cases: labelled recall, pairs by name, ordering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facebatch.engines.evaluation.agreement import GROUND_TRUTH, labelled_faces
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.scrfd_decode import Detections
from facebatch.verify.accuracy import detector_accuracy, embedder_accuracy, pair_scores


def faces(*boxes: list[float]) -> Detections:
    array = np.array(boxes, np.float32).reshape(-1, 4)
    landmarks = np.repeat(array[:, None, :2], 5, axis=1)
    return Detections(array, np.full(len(array), 0.9, np.float32), landmarks)


def test_matches_misses_extras_and_labelled_recall(tmp_path: Path):
    photo = tmp_path / "a.jpg"
    (tmp_path / GROUND_TRUTH).write_text(
        json.dumps({"images": {"a.jpg": [[0, 0, 10, 10], [50, 50, 60, 60]], "other.jpg": [[0, 0, 1, 1]]}})
    )
    assert list(labelled_faces([photo])) == ["a.jpg"]
    reference = [ImageFaces(photo, (100, 100), faces([0, 0, 10, 10], [50, 50, 60, 60]))]
    candidate = [ImageFaces(photo, (100, 100), faces([1, 0, 11, 10], [80, 80, 90, 90]))]
    accuracy = detector_accuracy(reference, candidate, [photo])
    assert accuracy.matched == 1 and len(accuracy.missed) == 1 and len(accuracy.extra) == 1
    assert accuracy.ious[0] == np.float32(90 / 110) and accuracy.landmark_errors_px == [1.0]
    assert (accuracy.labelled, accuracy.recall_reference, accuracy.recall_candidate) == (2, 2, 1)


def test_pairs_come_from_names_and_ordering_is_judged_per_model():
    e = np.eye(4, dtype=np.float32)
    reference = {
        "obama_1.jpg": e[0],
        "obama_2.jpg": e[0] + 0.1 * e[1],
        "rob_lowe_1.jpg": e[2],
        "rob_lowe_2.jpg": e[2],
        "voc_2008_001009.jpg": e[3],
    }
    candidate = dict(reference) | {"obama_2.jpg": e[2]}  # obama's second photo now looks like rob lowe
    pairs = pair_scores(reference, candidate)
    assert len(pairs) == 6 and sum(p.same_person for p in pairs) == 2  # voc_2008_001009 is no person's photo
    accuracy = embedder_accuracy(
        np.stack([e[0], e[1]]), np.stack([e[0], e[1] + e[0]]), {k: (reference[k], candidate[k]) for k in reference}
    )
    assert accuracy.min_cosine < 0.71 and accuracy.ordering_reference is True and accuracy.ordering_candidate is False
