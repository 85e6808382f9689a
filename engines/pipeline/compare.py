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


@dataclass(frozen=True)
class PairScores:
    """Labelled pairs' cosines judged at a threshold: accuracy there, the threshold with the best accuracy, and
    the ROC AUC (the chance that a same-person pair scores above a different-people pair; threshold-free)."""

    pairs: int
    same_pairs: int
    threshold: float
    accuracy: float  # at ``threshold``
    correct: int
    best_threshold: float
    best_accuracy: float
    roc_auc: float | None  # None: the pairs are all same or all different

    def to_dict(self) -> dict:
        return {
            "pairs": self.pairs,
            "same_pairs": self.same_pairs,
            "different_pairs": self.pairs - self.same_pairs,
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "best_threshold": self.best_threshold,
            "best_accuracy": self.best_accuracy,
            "roc_auc": self.roc_auc,
        }


def score_pairs(cosines: np.ndarray, same: np.ndarray, threshold: float) -> PairScores:
    """Accuracy at ``threshold`` (same person where cosine ≥ it), the best threshold and the ROC AUC of labelled
    pairs (``same``: True for a same-person pair)."""
    cosines, same = np.asarray(cosines, np.float64), np.asarray(same, bool)
    if not len(cosines):
        raise ValueError("no labelled pair to score")
    correct = int(np.sum((cosines >= threshold) == same))
    best, best_accuracy = best_threshold(cosines, same)
    return PairScores(
        pairs=len(cosines),
        same_pairs=int(same.sum()),
        threshold=threshold,
        accuracy=correct / len(cosines),
        correct=correct,
        best_threshold=best,
        best_accuracy=best_accuracy,
        roc_auc=roc_auc(cosines, same),
    )


def best_threshold(cosines: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold of the highest accuracy, and that accuracy. Accuracy changes only at the cosines themselves,
    so each gap between two neighbouring cosines (and the two ends, out to -1 and 1) is one candidate: of the gaps
    with the highest accuracy the widest wins, and its middle is the threshold (the margin both ways is largest)."""
    values = np.unique(cosines)
    edges = np.concatenate([[min(-1.0, values[0])], values, [max(1.0, values[-1])]])
    lows, highs = edges[:-1], edges[1:]  # gap k: thresholds in (lows[k], highs[k]] call values ≥ highs[k] same
    predicted = cosines[None, :] >= highs[:, None]  # [gaps, pairs]: a threshold in gap k
    accuracy = (predicted == same[None, :]).mean(axis=1)
    best = np.flatnonzero(accuracy == accuracy.max())
    widest = best[np.argmax(highs[best] - lows[best])]
    return float((lows[widest] + highs[widest]) / 2), float(accuracy[widest])


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """The area under the ROC curve from ranks (Mann-Whitney U over positives × negatives; ties count half), or
    None when one class is absent."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    positives, negatives = int(positive.sum()), int((~positive).sum())
    if not positives or not negatives:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, tied, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.bincount(tied, weights=ranks) / counts)[tied]  # a tie's ranks averaged
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))
