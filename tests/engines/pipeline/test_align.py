"""Alignment: the Umeyama similarity is exact on points that are a similarity of the template,
never reflects, and reproduces insightface's norm_crop."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from facebatch.configs.arcface import ALIGNMENT_TEMPLATE_112
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.align import align_faces, similarity_transforms, template_for

TEMPLATE = np.array(ALIGNMENT_TEMPLATE_112)


def _similarity(scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def test_a_known_similarity_is_recovered_exactly_for_every_face_at_once():
    truths = [_similarity(0.5, 0.3, (10, -4)), _similarity(2.0, -1.2, (-30, 7)), _similarity(0.25, 3.0, (5, 5))]
    # landmarks = inverse(truth) applied to the template, so that truth maps them back onto it
    faces = []
    for m in truths:
        inverse = cv2.invertAffineTransform(m)
        faces.append(TEMPLATE @ inverse[:, :2].T + inverse[:, 2])
    got = similarity_transforms(np.stack(faces), TEMPLATE)
    np.testing.assert_allclose(got, np.stack(truths), atol=1e-9)


def test_mirrored_landmarks_get_a_rotation_not_a_reflection():
    mirrored = TEMPLATE * [-1, 1] + [200, 0]
    (m,) = similarity_transforms(mirrored[None], TEMPLATE)
    assert np.linalg.det(m[:, :2]) > 0


def test_templates_scale_like_insightface_estimate_norm():
    np.testing.assert_allclose(template_for(ALIGNMENT_TEMPLATE_112, (224, 224)), TEMPLATE * 2)
    shifted = template_for(ALIGNMENT_TEMPLATE_112, (128, 128))
    np.testing.assert_allclose(shifted, TEMPLATE + [8, 0])
    with pytest.raises(SpecError, match="multiples of 112 or 128"):
        template_for(ALIGNMENT_TEMPLATE_112, (100, 100))
    with pytest.raises(SpecError, match="square"):
        template_for(ALIGNMENT_TEMPLATE_112, (112, 96))


def test_a_degenerate_face_stays_black_and_does_not_raise():
    image = np.full((50, 50, 3), 200, np.uint8)
    crops = align_faces(image, np.full((1, 5, 2), 10.0), TEMPLATE, (112, 112))
    assert crops.shape == (1, 112, 112, 3) and not crops.any()


def test_crops_equal_insightface_norm_crop(photos):
    face_align = pytest.importorskip("insightface.utils.face_align", reason="insightface is the 'compare' extra")
    image = cv2.imread(str(next(p for p in photos if p.name == "t1.jpg")))
    rng = np.random.default_rng(0)
    landmarks = (
        TEMPLATE[None] * rng.uniform(0.5, 3, (12, 1, 1))
        + rng.uniform(0, 600, (12, 1, 2))
        + rng.normal(0, 3, (12, 5, 2))
    )
    for size in (112, 128):
        ours = align_faces(image, landmarks, template_for(ALIGNMENT_TEMPLATE_112, (size, size)), (size, size))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skimage's deprecation of SimilarityTransform.estimate, inside insightface
            theirs = np.stack([face_align.norm_crop(image, lm, size) for lm in landmarks])
        assert (
            np.abs(ours.astype(int) - theirs).max() <= 1
        )  # skimage estimates in the landmarks' float32; we in float64
