"""SCRFD post-processing as insightface's python-package does it:
anchor centres, distance → box/landmark decode, score threshold, greedy NMS, ``max_num``.

Input: one frame's outputs in our layout, ``{"score_8": [rows, 1], "bbox_8": [rows, 4],
"kps_8": [rows, 10], ...}`` (``canonical_outputs`` maps any SCRFD graph's outputs to it).
Everything stays float32, as in the reference, so detections match it bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facebatch.configs.spec import HeadLayout
from facebatch.core.errors import SpecError

DET_THRESH = 0.5  # insightface SCRFD.det_thresh
NMS_THRESH = 0.4  # insightface SCRFD.nms_thresh


def check_thresholds(det_thresh: float, nms_thresh: float) -> None:
    """Both thresholds in (0, 1]: a score of 0 keeps every anchor, an IoU of 0 suppresses every overlap."""
    for name, value in (("det_thresh", det_thresh), ("nms_thresh", nms_thresh)):
        if not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise SpecError(f"{name} must be a number in (0, 1], got {value!r}", field=name)


LANDMARKS = 5


@dataclass(frozen=True)
class Detections:
    """One frame's faces, best score first: boxes [n, 4] (x1, y1, x2, y2), scores [n],
    landmarks [n, 5, 2] (eyes, nose, mouth corners) or None for detectors without them."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Detections:
        landmarks = None if self.landmarks is None else self.landmarks[keep]
        return Detections(self.boxes[keep], self.scores[keep], landmarks)

    def scaled(self, det_scale: float) -> Detections:
        """From network-input pixels back to the original image (``/ det_scale``)."""
        landmarks = None if self.landmarks is None else self.landmarks / np.float32(det_scale)
        return Detections(self.boxes / np.float32(det_scale), self.scores, landmarks)


@lru_cache(maxsize=64)
def anchor_centers(grid_h: int, grid_w: int, stride: int, anchors: int) -> np.ndarray:
    """[(y·W + x)·A + a, 2] → (x·stride, y·stride): the row order of the head outputs."""
    ys, xs = np.mgrid[:grid_h, :grid_w]
    centers = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
    if anchors > 1:
        centers = np.repeat(centers, anchors, axis=0)
    centers.setflags(write=False)  # cached and shared
    return centers


def distance2bbox(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(l, t, r, b) distances from the centre → (x1, y1, x2, y2); no clamping, as the reference."""
    x, y = centers[:, 0], centers[:, 1]
    return np.stack([x - distances[:, 0], y - distances[:, 1], x + distances[:, 2], y + distances[:, 3]], axis=-1)


def distance2kps(centers: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """(dx0, dy0 … dx4, dy4) from the centre → [n, 5, 2] points."""
    offsets = distances.reshape(distances.shape[0], LANDMARKS, 2)
    return centers[:, None, :] + offsets


def _level_rows(outputs: Mapping[str, np.ndarray], name: str, rows: int, channels: int) -> np.ndarray:
    array = outputs.get(name)
    if array is None:
        raise SpecError(f"SCRFD outputs lack {name}")
    if array.shape != (rows, channels):
        raise SpecError(f"{name} has shape {list(array.shape)}, expected [{rows}, {channels}] for one frame")
    return array


def candidates(
    outputs: Mapping[str, np.ndarray],
    layout: HeadLayout,
    height: int,
    width: int,
    det_thresh: float = DET_THRESH,
) -> Detections:
    """Every anchor whose score reaches ``det_thresh``, decoded, best score first (before NMS)."""
    boxes, scores, landmarks = [], [], []
    for stride in layout.strides:
        grid_h, grid_w = height // stride, width // stride
        centers = anchor_centers(grid_h, grid_w, stride, layout.anchors_per_location)
        rows = centers.shape[0]
        score = _level_rows(outputs, f"score_{stride}", rows, 1)[:, 0]
        pos = np.where(score >= det_thresh)[0]
        bbox = _level_rows(outputs, f"bbox_{stride}", rows, 4)[pos] * np.float32(stride)
        boxes.append(distance2bbox(centers[pos], bbox))
        scores.append(score[pos])
        if layout.use_kps:
            kps = _level_rows(outputs, f"kps_{stride}", rows, 2 * LANDMARKS)[pos] * np.float32(stride)
            landmarks.append(distance2kps(centers[pos], kps))
    all_scores = np.concatenate(scores).astype(np.float32)
    order = np.argsort(-all_scores, kind="stable")
    found = Detections(
        np.concatenate(boxes).astype(np.float32),
        all_scores,
        np.concatenate(landmarks).astype(np.float32) if layout.use_kps else None,
    )
    return found.select(order)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [n, 4] with every box in ``b`` [m, 4] (x1, y1, x2, y2) → [n, m].
    Identical boxes have IoU 1 even when empty or inverted (x2 < x1: noise frames and seeded
    weights regress such boxes), so the same detections always match themselves."""
    a64, b64 = a.astype(np.float64)[:, None, :], b.astype(np.float64)[None, :, :]
    inter_w = np.clip(np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a64[..., 2] - a64[..., 0]) * (a64[..., 3] - a64[..., 1])
    area_b = (b64[..., 2] - b64[..., 0]) * (b64[..., 3] - b64[..., 1])
    union = area_a + area_b - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(np.all(a64 == b64, axis=-1), 1.0, iou)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float = NMS_THRESH) -> np.ndarray:
    """Greedy, class-agnostic NMS with the reference's +1 pixel areas; keeps a candidate
    whose IoU with every kept box is ``<= iou_thresh``. Returns kept indices, best first."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        inter_w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = inter_w * inter_h
        with np.errstate(
            invalid="ignore", divide="ignore"
        ):  # degenerate boxes (seeded weights): NaN IoU drops them, as insightface does
            iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thresh]
    return np.asarray(keep, dtype=np.int64)


def limit_faces(found: Detections, max_num: int, image_hw: tuple[int, int], metric: str = "default") -> Detections:
    """insightface's ``max_num``: keep the largest faces, preferring central ones (``default``)
    or by area alone (``max``); ``max_num`` 0 keeps all."""
    if metric not in ("default", "max"):
        raise SpecError(f"unknown max_num metric {metric!r}; use 'default' or 'max'")
    if max_num <= 0 or len(found) <= max_num:
        return found
    b = found.boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    center_y, center_x = image_hw[0] // 2, image_hw[1] // 2
    offsets = np.stack([(b[:, 0] + b[:, 2]) / 2 - center_x, (b[:, 1] + b[:, 3]) / 2 - center_y])
    values = area - 2.0 * np.sum(offsets**2, axis=0) if metric == "default" else area
    keep = np.argsort(values)[::-1][:max_num]
    return found.select(keep)


def decode_frame(
    outputs: Mapping[str, np.ndarray],
    layout: HeadLayout,
    height: int,
    width: int,
    det_thresh: float = DET_THRESH,
    nms_thresh: float = NMS_THRESH,
) -> Detections:
    """One frame's raw head outputs → its faces in network-input pixels (decode + NMS)."""
    found = candidates(outputs, layout, height, width, det_thresh)
    if not len(found):
        return found
    return found.select(nms(found.boxes, found.scores, nms_thresh))
