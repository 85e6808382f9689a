"""compare's semantics on the pipeline's output: the best face of each photo, cosine against a
threshold; a photo without a face, or unread, is refused naming what to change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.compare import NoFaceFound, cosine_similarity, match_best_faces
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.scrfd_decode import Detections


def photo(name: str, vectors: list[list[float]]) -> ImageFaces:
    count = len(vectors)
    boxes = np.tile(np.asarray([[10, 20, 60, 80]], np.float32), (count, 1))
    scores = np.linspace(0.9, 0.5, count, dtype=np.float32)
    faces = Detections(boxes, scores, np.zeros((count, 5, 2), np.float32))
    return ImageFaces(Path(name), (100, 100), faces, np.asarray(vectors, np.float32).reshape(count, -1))


def test_the_best_faces_are_compared_at_the_threshold():
    a, b = photo("a.jpg", [[1, 0], [0, 1]]), photo("b.jpg", [[0.6, 0.8]])
    match = match_best_faces(a, b, threshold=0.5)
    assert match.cosine == pytest.approx(0.6) and match.same  # the first (best-scoring) face of a.jpg
    assert not match_best_faces(a, b, threshold=0.7).same
    record = match.to_dict()
    assert {k: record["first"][k] for k in ("path", "faces", "best_bbox")} == {
        "path": "a.jpg",
        "faces": 2,
        "best_bbox": [10.0, 20.0, 60.0, 80.0],
    }
    assert record["first"]["best_score"] == pytest.approx(0.9)
    assert record["same_person"] is True and record["threshold"] == 0.5


def test_a_photo_without_a_face_names_the_threshold_to_lower():
    empty = ImageFaces(Path("wall.jpg"), (100, 100), Detections(np.zeros((0, 4)), np.zeros(0)), np.zeros((0, 2)))
    with pytest.raises(NoFaceFound, match="no face found in wall.jpg; try a lower det_thresh") as refused:
        match_best_faces(photo("a.jpg", [[1, 0]]), empty, 0.3)
    assert refused.value.field == "det_thresh" and refused.value.exit_code == 1
    with pytest.raises(SpecError, match="cannot be decoded"):
        match_best_faces(ImageFaces(Path("x.jpg"), error="image x.jpg cannot be decoded"), empty, 0.3)


def test_cosine_similarity_is_scale_free_and_zero_for_a_zero_vector():
    assert cosine_similarity(np.array([3.0, 4.0]), np.array([6.0, 8.0])) == pytest.approx(1.0)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 0.0])) == 0.0


def test_roc_auc_is_the_share_of_same_over_different_pairs_ties_half():
    from facebatch.engines.pipeline.compare import roc_auc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=40), 1)  # rounded: many ties
    positive = rng.random(40) < 0.4
    pos, neg = scores[positive], scores[~positive]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert roc_auc(scores, positive) == pytest.approx(pairwise)
    assert roc_auc(np.array([0.9, 0.1]), np.array([True, False])) == 1.0
    assert roc_auc(np.array([0.9, 0.1]), np.array([True, True])) is None  # one class: no AUC


def test_the_best_threshold_sits_in_the_middle_of_the_widest_gap_of_best_accuracy():
    from facebatch.engines.pipeline.compare import best_threshold, score_pairs

    cosines = np.array([0.78, 0.58, 0.68, -0.03, 0.07, 0.32])
    same = np.array([True, True, True, False, False, False])
    threshold, accuracy = best_threshold(cosines, same)
    assert accuracy == 1.0 and threshold == pytest.approx((0.32 + 0.58) / 2)
    scores = score_pairs(cosines, same, 0.3)  # 0.32 is called "same" at 0.3
    assert (scores.correct, scores.pairs, scores.same_pairs) == (5, 6, 3)
    assert scores.accuracy == pytest.approx(5 / 6) and scores.roc_auc == 1.0
    overlapping = best_threshold(np.array([0.2, 0.4, 0.6]), np.array([False, True, False]))
    assert overlapping == (pytest.approx(0.8), pytest.approx(2 / 3))  # ties: the widest gap, (0.6, 1]
