"""Do two runs of a face pipeline find the same faces? Per photo: the same number of faces,
each matched to its counterpart by IoU, boxes and landmarks within a pixel tolerance, and
embeddings of the same face in the same direction (cosine).

Used to prove that the batched pipeline equals the per-image loop, and that it finds what
insightface's own ``FaceAnalysis`` finds on the same ONNX files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.core.words import counted
from facebatch.engines.pipeline.compare import cosine_similarity
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.scrfd_decode import box_iou

PIXEL_TOLERANCE = 1.0  # boxes and landmarks, in photo pixels
MIN_COSINE = 0.999  # the same face's embedding from both runs
MATCH_IOU = 0.5  # below this two faces are not the same face


def match_faces(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of boxes by IoU (highest first), pairs with IoU ≥ MATCH_IOU."""
    if not len(a) or not len(b):
        return []
    iou = box_iou(a, b)
    pairs = []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < MATCH_IOU:
            break
        if all(i != p and j != q for p, q in pairs):
            pairs.append((i, j))
    return sorted(pairs)


@dataclass
class Agreement:
    """How far two runs over the same photos are apart (worst case over every matched face)."""

    label: str  # e.g. "facebatch pipeline vs insightface FaceAnalysis"
    images: int = 0
    faces: int = 0  # faces matched
    box_px: float = 0.0
    landmark_px: float = 0.0
    min_cosine: float | None = None
    problems: list[str] = field(default_factory=list)  # per photo or face: what differs beyond the tolerances
    differing: set[str] = field(default_factory=set)  # the photos with a problem
    # why differences are expected and not judged (other models or another decode than the reference's); "" judged
    informational: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def judged(self) -> bool:
        return not self.informational

    def summary(self) -> str:
        cosine = f", embedding cosine ≥ {self.min_cosine:.6f}" if self.min_cosine is not None else ""
        verdict = (
            "same faces"
            if self.passed
            else f"differs on {counted(len(self.differing), 'photo')}, as expected: {self.informational}"
            if self.informational
            else f"DIFFERENT on {counted(len(self.differing), 'photo')}"
        )
        return (
            f"{self.label}: {verdict}: {self.faces} faces on {self.images} photos, boxes within {self.box_px:.3f} px, "
            f"landmarks within {self.landmark_px:.3f} px{cosine}"
        )

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "passed": self.passed,
            "judged": self.judged,
            "informational": self.informational,
            "images": self.images,
            "faces": self.faces,
            "box_px": self.box_px,
            "landmark_px": self.landmark_px,
            "min_cosine": self.min_cosine,
            "problems": self.problems,
            "photos_differing": sorted(self.differing),
            "tolerances": {"pixels": PIXEL_TOLERANCE, "min_cosine": MIN_COSINE},
        }


def compare_runs(
    label: str,
    ours: Sequence[ImageFaces],
    theirs: Sequence[ImageFaces],
    pixels: float = PIXEL_TOLERANCE,
    min_cosine: float = MIN_COSINE,
) -> Agreement:
    """``ours`` and ``theirs``: the same photos in the same order."""
    result = Agreement(label)
    for a, b in zip(ours, theirs, strict=True):
        name = a.path.name
        if not a.ok or not b.ok:
            if a.ok != b.ok:
                result.problems.append(f"{name}: read by one run only ({a.error or b.error})")
                result.differing.add(name)
            continue
        result.images += 1
        fa, fb = a.faces, b.faces
        assert fa is not None and fb is not None
        pairs = match_faces(fa.boxes, fb.boxes)
        if len(fa) != len(fb) or len(pairs) != len(fa):
            result.problems.append(f"{name}: {len(fa)} faces against {len(fb)} ({len(pairs)} matched)")
            result.differing.add(name)
        for i, j in pairs:
            result.faces += 1
            box = float(np.abs(fa.boxes[i] - fb.boxes[j]).max())
            result.box_px = max(result.box_px, box)
            marks = 0.0
            if fa.landmarks is not None and fb.landmarks is not None:
                marks = float(np.linalg.norm(fa.landmarks[i] - fb.landmarks[j], axis=-1).max())
                result.landmark_px = max(result.landmark_px, marks)
            cosine = None
            if a.embeddings is not None and b.embeddings is not None:
                cosine = cosine_similarity(a.embeddings[i], b.embeddings[j])
                result.min_cosine = cosine if result.min_cosine is None else min(result.min_cosine, cosine)
            if box > pixels or marks > pixels or (cosine is not None and cosine < min_cosine):
                cos_text = f", cosine {cosine:.6f}" if cosine is not None else ""
                result.problems.append(f"{name} face {i}: box {box:.2f} px, landmarks {marks:.2f} px{cos_text}")
                result.differing.add(name)
    return result


GROUND_TRUTH = "faces_ground_truth.json"


def labelled_faces(photos: Sequence[Path]) -> dict[str, np.ndarray]:
    """Hand-labelled boxes of the photos that have them (the ground-truth file beside them)."""
    labelled: dict[str, np.ndarray] = {}
    for folder in dict.fromkeys(Path(p).parent for p in photos):
        truth = folder / GROUND_TRUTH
        if truth.is_file():
            boxes = json.loads(truth.read_text()).get("images", {})
            labelled |= {name: np.asarray(b, np.float32).reshape(-1, 4) for name, b in boxes.items()}
    names = {Path(p).name for p in photos}
    return {name: boxes for name, boxes in labelled.items() if name in names}


def recall(results: dict[str, ImageFaces], labelled: dict[str, np.ndarray]) -> tuple[int, int]:
    """(labelled faces found at IoU ≥ 0.5, labelled faces)."""
    found = total = 0
    for name, boxes in labelled.items():
        total += len(boxes)
        faces = results[name].faces
        if faces is not None and len(faces) and len(boxes):
            found += int((box_iou(boxes, faces.boxes).max(axis=1) >= MATCH_IOU).sum())
    return found, total
