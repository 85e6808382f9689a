"""Check 4, decoded: does a detector find the same faces as its reference on the same frames?

Raw outputs are compared element by element (``parity``); this compares what users get
after decode and NMS: per frame the same faces (matched by IoU ≥ ``DECODED_MIN_IOU``), scores
within ``DECODED_SCORE_ATOL`` and landmarks within ``DECODED_LANDMARK_ATOL_PX`` pixels of the
network input. An FP16 artifact against its FP32 source is judged here above all.

Two faces are the same face when their boxes overlap by IoU ≥ the minimum, or when no edge of
the box moved by more than the landmark tolerance: a small face's box shifted by 2 px keeps IoU
0.78 at 15 px wide (the 151-face selfie, SCRFD-2.5G INT8 on AVX2), a large one's must overlap.

A face whose score lies within the score tolerance of the threshold may fall on either side
of it (0.501 vs 0.499): each side's faces are therefore looked for among the other side's
faces decoded at ``det_thresh − score tolerance``, so only real disagreements count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from facebatch.configs.precision import (
    DECODED_LANDMARK_ATOL_PX,
    DECODED_MIN_IOU,
    DECODED_SCORE_ATOL,
    SCORING_ANCHOR_FLOOR,
    Precision,
    decoded_tolerances,
)
from facebatch.configs.spec import HeadLayout
from facebatch.engines.pipeline.face_detect import per_frame
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections, box_iou, decode_frame
from facebatch.verify.parity import Judged


@dataclass
class FrameAgreement:
    frame: int
    faces: int  # detections of the reference at det_thresh
    found: int  # detections of the model under test at det_thresh
    matched: int = 0
    min_iou: float = 1.0
    max_edge_px: float = 0.0  # the largest shift of a matched box's edge
    max_score_diff: float = 0.0
    max_landmark_diff_px: float = 0.0
    missed: int = 0  # reference faces with no partner
    extra: int = 0  # faces of the model under test with no partner

    def problems(self, min_iou: float, score_atol: float, landmark_atol: float) -> list[str]:
        found = []
        if self.missed or self.extra:
            found.append(
                f"{self.missed} face(s) of the reference not found, {self.extra} extra (of {self.faces} vs {self.found})"
            )
        if self.max_score_diff > score_atol:
            found.append(f"score diff {self.max_score_diff:.3g} > {score_atol:g}")
        if self.max_landmark_diff_px > landmark_atol:
            found.append(f"landmarks {self.max_landmark_diff_px:.3g} px > {landmark_atol:g} px")
        return found


@dataclass
class DecodedAgreement:
    label: str  # e.g. "batch 32"
    det_thresh: float
    nms_thresh: float
    min_iou: float = DECODED_MIN_IOU
    score_atol: float = DECODED_SCORE_ATOL
    landmark_atol_px: float = DECODED_LANDMARK_ATOL_PX
    frames: list[FrameAgreement] = field(default_factory=list)

    @property
    def faces(self) -> int:
        return sum(f.faces for f in self.frames)

    def failures(self) -> list[str]:
        return [
            f"frame {f.frame}: " + "; ".join(p)
            for f in self.frames
            if (p := f.problems(self.min_iou, self.score_atol, self.landmark_atol_px))
        ]

    @property
    def passed(self) -> bool:
        return bool(self.frames) and not self.failures()

    def summary(self) -> str:
        if not self.passed:
            bad = self.failures()
            return (
                f"{self.label} decoded: {len(bad)} frame(s) disagree; first: {bad[0]}"
                if bad
                else f"{self.label} decoded: no frame compared"
            )
        matched = [f for f in self.frames if f.matched]
        if not matched:
            return f"{self.label} decoded: no face at det_thresh {self.det_thresh:g} on either side ({len(self.frames)} frames)"
        iou = min(f.min_iou for f in matched)
        edge = max(f.max_edge_px for f in matched)
        score = max(f.max_score_diff for f in matched)
        landmarks = max(f.max_landmark_diff_px for f in matched)
        return (
            f"{self.label} decoded: the same {sum(f.matched for f in matched)} faces in {len(self.frames)} frames, "
            f"min IoU {iou:.4f}, box edges within {edge:.3g} px, scores within {score:.3g}, landmarks within {landmarks:.3g} px"
        )

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "passed": self.passed,
            "det_thresh": self.det_thresh,
            "nms_thresh": self.nms_thresh,
            "min_iou": self.min_iou,
            "score_atol": self.score_atol,
            "landmark_atol_px": self.landmark_atol_px,
            "frames": [asdict(f) for f in self.frames],
            "failures": self.failures(),
        }


def _partners(these: Detections, others_low: Detections, min_iou: float, edge_px: float) -> np.ndarray:
    """For each of ``these``, the index of its partner among ``others_low``: the best-overlapping box
    with IoU ≥ ``min_iou`` or no edge further than ``edge_px`` (greedy, best score first, each
    partner used once), or −1."""
    partner = np.full(len(these), -1, dtype=np.int64)
    if not len(these) or not len(others_low):
        return partner
    iou = box_iou(these.boxes, others_low.boxes)
    edges = np.max(np.abs(these.boxes[:, None, :].astype(np.float64) - others_low.boxes[None, :, :]), axis=-1)
    same = (iou >= min_iou) | (edges <= edge_px)
    taken: set[int] = set()
    for i in range(len(these)):  # best score first: Detections are ordered so
        for j in np.argsort(-iou[i] + edges[i] * 1e-9, kind="stable"):
            if same[i, j] and int(j) not in taken:
                partner[i] = int(j)
                taken.add(int(j))
                break
    return partner


def frame_agreement(
    frame: int,
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    layout: HeadLayout,
    size: tuple[int, int],
    det_thresh: float,
    nms_thresh: float,
    score_atol: float,
    min_iou: float,
    edge_px: float,
) -> FrameAgreement:
    """One frame's canonical outputs (``{"score_8": [rows, 1], …}``) of both sides."""
    height, width = size
    low = max(det_thresh - score_atol, 0.0)
    ours, ref = (
        decode_frame(actual, layout, height, width, det_thresh, nms_thresh),
        decode_frame(expected, layout, height, width, det_thresh, nms_thresh),
    )
    ours_low, ref_low = (
        decode_frame(actual, layout, height, width, low, nms_thresh),
        decode_frame(expected, layout, height, width, low, nms_thresh),
    )
    result = FrameAgreement(frame, len(ref), len(ours))
    ref_partner = _partners(ref, ours_low, min_iou, edge_px)
    result.missed = int(np.count_nonzero(ref_partner < 0))
    result.extra = int(np.count_nonzero(_partners(ours, ref_low, min_iou, edge_px) < 0))
    pairs = [(i, int(j)) for i, j in enumerate(ref_partner) if j >= 0]
    result.matched = len(pairs)
    if pairs:
        r, o = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        result.min_iou = float(np.min(np.diag(box_iou(ref.boxes[r], ours_low.boxes[o]))))
        result.max_edge_px = float(np.max(np.abs(ref.boxes[r].astype(np.float64) - ours_low.boxes[o])))
        result.max_score_diff = float(np.max(np.abs(ref.scores[r].astype(np.float64) - ours_low.scores[o])))
        if ref.landmarks is not None and ours_low.landmarks is not None:
            result.max_landmark_diff_px = float(
                np.max(np.abs(ref.landmarks[r].astype(np.float64) - ours_low.landmarks[o]))
            )
    return result


def decoded_agreement(
    label: str,
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    layout: HeadLayout,
    size: tuple[int, int],
    det_thresh: float = DET_THRESH,
    nms_thresh: float = NMS_THRESH,
    precision: Precision = Precision.FP32,
) -> DecodedAgreement:
    """Both sides' canonical batched outputs (``{"score_8": [N, rows, 1], …}``), frame by frame,
    at the decoded tolerances of the actual side's precision."""
    min_iou, score_atol, landmark_px = decoded_tolerances(precision)
    report = DecodedAgreement(label, det_thresh, nms_thresh, min_iou, score_atol, landmark_px)
    frames = next(iter(expected.values())).shape[0]
    for i in range(frames):
        report.frames.append(
            frame_agreement(
                i,
                per_frame(actual, i),
                per_frame(expected, i),
                layout,
                size,
                det_thresh,
                nms_thresh,
                report.score_atol,
                report.min_iou,
                report.landmark_atol_px,
            )
        )
    return report


def scoring_anchors(
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    layout: HeadLayout,
    floor: float = SCORING_ANCHOR_FLOOR,
) -> Judged:
    """Where a detector's boxes and landmarks can matter: the anchors (rows) that score at least
    ``floor`` on either side, per stride, for both sides' canonical outputs. Scores themselves
    are judged everywhere."""
    masks = {}
    for stride in layout.strides:
        rows = (expected[f"score_{stride}"] >= floor) | (actual[f"score_{stride}"] >= floor)  # [N, rows, 1]
        for kind in layout.kinds:
            if kind != "score":
                masks[f"{kind}_{stride}"] = rows
    return Judged(masks, f"at anchors scoring >= {floor:g}")
