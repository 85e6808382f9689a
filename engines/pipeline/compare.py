"""Comparison on the pipeline's output, what ``compare`` does: the best face of each of two photos,
their embeddings' cosine against a threshold. (Whether two runs find the same faces is evaluation:
``engines/evaluation/agreement.py``.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facebatch.core.errors import FacebatchError, SpecError
from facebatch.engines.pipeline.image_faces import ImageFaces


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


@dataclass(frozen=True)
class FaceMatch:
    """The best faces of two photos compared: cosine of their embeddings against a threshold."""

    first: ImageFaces
    second: ImageFaces
    cosine: float
    threshold: float

    @property
    def same(self) -> bool:
        return self.cosine >= self.threshold

    def to_dict(self) -> dict:
        def face(result: ImageFaces) -> dict:
            assert result.faces is not None
            return {
                "path": str(result.path),
                "faces": len(result),
                "best_bbox": [float(v) for v in result.faces.boxes[0]],
                "best_score": float(result.faces.scores[0]),
            }

        return {
            "first": face(self.first),
            "second": face(self.second),
            "cosine": self.cosine,
            "threshold": self.threshold,
            "same_person": self.same,
        }


def match_best_faces(first: ImageFaces, second: ImageFaces, threshold: float) -> FaceMatch:
    """Compare the highest-scoring face of each photo; a photo without a face, or unread, is an error."""
    for result in (first, second):
        if not result.ok:
            raise SpecError(str(result.error))
        if not len(result) or result.embeddings is None:
            raise NoFaceFound(
                f"no face found in {result.path}; try a lower det_thresh, or another photo", field="det_thresh"
            )
    assert first.embeddings is not None and second.embeddings is not None
    return FaceMatch(first, second, cosine_similarity(first.embeddings[0], second.embeddings[0]), threshold)


class NoFaceFound(FacebatchError):
    """A photo that had to show a face shows none."""

    exit_code = 1
