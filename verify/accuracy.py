"""Is a reduced-precision model still right? Its faces against its FP32 source's on the same
photos, held by what users see rather than by raw tensors:

* detectors: the faces matched one to one by IoU, their IoU and landmark error in pixels,
  the faces one model finds and the other does not, and recall on hand-labelled faces
  (``faces_ground_truth.json`` beside the photos) for both;
* embedders: the cosine of every face's two embeddings (the same aligned crop through both),
  and whether the same-person pairs (``<name>_1`` / ``<name>_2``) still score above every
  different-person pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from facebatch.engines.evaluation.agreement import labelled_faces, match_faces, recall
from facebatch.engines.pipeline.compare import cosine_similarity
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.scrfd_decode import box_iou

PAIR_NAME = re.compile(r"^(?P<person>.*[A-Za-z])_(?P<n>\d{1,2})$")  # obama_1, rob_lowe_2 (not voc_2008_001009)


@dataclass
class DetectorAccuracy:
    photos: int
    reference_faces: int
    candidate_faces: int
    ious: list[float] = field(default_factory=list)  # per matched face
    landmark_errors_px: list[float] = field(default_factory=list)  # per matched face: the worst of its 5 points
    missed: list[str] = field(default_factory=list)  # "photo: box" found by the reference only
    extra: list[str] = field(default_factory=list)  # found by the candidate only
    labelled: int = 0
    recall_reference: int = 0
    recall_candidate: int = 0

    @property
    def matched(self) -> int:
        return len(self.ious)

    def to_dict(self) -> dict:
        def stats(values: list[float]) -> dict:
            return (
                {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}
                if values
                else {}
            )

        return {
            "photos": self.photos,
            "reference_faces": self.reference_faces,
            "candidate_faces": self.candidate_faces,
            "matched": self.matched,
            "iou": stats(self.ious),
            "landmark_error_px": stats(self.landmark_errors_px),
            "missed": self.missed,
            "extra": self.extra,
            "labelled": self.labelled,
            "recall_reference": self.recall_reference,
            "recall_candidate": self.recall_candidate,
        }

    def lines(self) -> list[str]:
        lines = [
            f"{self.photos} photos: the FP32 model finds {self.reference_faces} faces, this one {self.candidate_faces}; "
            f"{self.matched} matched, {len(self.missed)} missed, {len(self.extra)} extra"
        ]
        if self.ious:
            lines.append(
                f"matched faces: IoU mean {np.mean(self.ious):.3f}, min {min(self.ious):.3f}; landmark error mean "
                f"{np.mean(self.landmark_errors_px):.2f} px, max {max(self.landmark_errors_px):.2f} px"
            )
        if self.labelled:
            lines.append(
                f"recall on {self.labelled} hand-labelled faces: FP32 {self.recall_reference}/{self.labelled}, "
                f"this one {self.recall_candidate}/{self.labelled}"
            )
        return lines


def detector_accuracy(
    reference: Sequence[ImageFaces], candidate: Sequence[ImageFaces], photos: Sequence[Path]
) -> DetectorAccuracy:
    """The candidate's faces against the reference's, photo by photo (same order)."""
    found = DetectorAccuracy(len(reference), sum(len(r) for r in reference), sum(len(c) for c in candidate))
    for ref, cand in zip(reference, candidate, strict=False):
        a, b = ref.faces, cand.faces
        if a is None or b is None:
            continue
        pairs = match_faces(a.boxes, b.boxes)
        for i, j in pairs:
            found.ious.append(float(box_iou(a.boxes[i : i + 1], b.boxes[j : j + 1])[0, 0]))
            if a.landmarks is not None and b.landmarks is not None:
                found.landmark_errors_px.append(float(np.linalg.norm(a.landmarks[i] - b.landmarks[j], axis=1).max()))
        matched_a, matched_b = {i for i, _ in pairs}, {j for _, j in pairs}
        found.missed += [
            f"{ref.path.name}: {np.round(a.boxes[i]).astype(int).tolist()} (score {a.scores[i]:.2f})"
            for i in range(len(a))
            if i not in matched_a
        ]
        found.extra += [
            f"{cand.path.name}: {np.round(b.boxes[j]).astype(int).tolist()} (score {b.scores[j]:.2f})"
            for j in range(len(b))
            if j not in matched_b
        ]
    labelled = labelled_faces(photos)
    if labelled:
        by_name_ref = {r.path.name: r for r in reference}
        by_name_cand = {c.path.name: c for c in candidate}
        found.recall_reference, found.labelled = recall(by_name_ref, labelled)
        found.recall_candidate, _ = recall(by_name_cand, labelled)
    return found


@dataclass
class PairScore:
    first: str
    second: str
    same_person: bool
    reference: float
    candidate: float


@dataclass
class EmbedderAccuracy:
    faces: int
    cosines: list[float] = field(default_factory=list)  # per face: FP32 embedding vs this one's
    pairs: list[PairScore] = field(default_factory=list)

    @property
    def min_cosine(self) -> float:
        return min(self.cosines) if self.cosines else 1.0

    @staticmethod
    def _ordered(pairs: list[PairScore], which: str) -> bool | None:
        same = [getattr(p, which) for p in pairs if p.same_person]
        other = [getattr(p, which) for p in pairs if not p.same_person]
        return min(same) > max(other) if same and other else None

    @property
    def ordering_reference(self) -> bool | None:
        """Every same-person pair above every different-person pair (FP32); None without pairs."""
        return self._ordered(self.pairs, "reference")

    @property
    def ordering_candidate(self) -> bool | None:
        return self._ordered(self.pairs, "candidate")

    def to_dict(self) -> dict:
        return {
            "faces": self.faces,
            "cosine": {"min": self.min_cosine, "mean": float(np.mean(self.cosines)) if self.cosines else None},
            "pairs": [p.__dict__ for p in self.pairs],
            "ordering_reference": self.ordering_reference,
            "ordering_candidate": self.ordering_candidate,
        }

    def lines(self) -> list[str]:
        lines = [
            f"{self.faces} aligned faces: cosine to the FP32 embedding min {self.min_cosine:.4f}, mean "
            f"{np.mean(self.cosines) if self.cosines else 1.0:.4f}"
        ]
        if self.ordering_reference is not None:
            same = [p for p in self.pairs if p.same_person]
            lines.append(
                f"{len(same)} same-person and {len(self.pairs) - len(same)} different-person pairs: ordering holds for FP32 "
                f"{'yes' if self.ordering_reference else 'no'}, for this one {'yes' if self.ordering_candidate else 'no'}"
            )
        return lines


def pair_scores(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> list[PairScore]:
    """Every pair of photos named ``<person>_<n>`` (the best face of each): same person when
    the names share ``<person>``."""
    people = {name: match.group("person") for name in reference if (match := PAIR_NAME.match(Path(name).stem))}
    scores = []
    for a, b in combinations(sorted(people), 2):
        scores.append(
            PairScore(
                a,
                b,
                people[a] == people[b],
                cosine_similarity(reference[a], reference[b]),
                cosine_similarity(candidate[a], candidate[b]),
            )
        )
    return scores


def embedder_accuracy(
    reference: np.ndarray, candidate: np.ndarray, best: dict[str, tuple[np.ndarray, np.ndarray]]
) -> EmbedderAccuracy:
    """``reference``/``candidate``: [n, D] embeddings of the same crops; ``best``: per photo, the
    two models' embeddings of its best face (for the pairs)."""
    cosines = [cosine_similarity(a, b) for a, b in zip(reference, candidate, strict=False)]
    pairs = pair_scores({k: v[0] for k, v in best.items()}, {k: v[1] for k, v in best.items()})
    return EmbedderAccuracy(len(cosines), cosines, pairs)
