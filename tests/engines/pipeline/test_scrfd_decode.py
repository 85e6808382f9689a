"""SCRFD decode + NMS, by hand on small arrays and end to end on real
detectors and hand-labelled photos."""

import json
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.scrfd import HeadLayout
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.face_detect import detect_faces
from facebatch.engines.pipeline.preprocess import load_image
from facebatch.engines.pipeline.scrfd_decode import (
    Detections,
    anchor_centers,
    candidates,
    decode_frame,
    distance2bbox,
    distance2kps,
    limit_faces,
    nms,
)
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner

KPS = HeadLayout((8, 16, 32), 2, True)


def test_anchor_centres_follow_the_head_row_order():
    centers = anchor_centers(2, 3, 8, 2)  # rows are (y·W + x)·A + a
    assert centers.shape == (12, 2)
    assert centers[:6].tolist() == [[0, 0], [0, 0], [8, 0], [8, 0], [16, 0], [16, 0]]
    assert centers[6].tolist() == [0, 8] and centers[-1].tolist() == [16, 8]
    assert anchor_centers(1, 2, 32, 1).tolist() == [[0, 0], [32, 0]]


def test_distances_become_boxes_and_points():
    centers = np.array([[10.0, 20.0]], np.float32)
    assert distance2bbox(centers, np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)).tolist() == [[9.0, 18.0, 13.0, 24.0]]
    points = distance2kps(centers, np.arange(10, dtype=np.float32)[None])
    assert points.shape == (1, 5, 2) and points[0, 4].tolist() == [18.0, 29.0]


def test_nms_uses_plus_one_areas_and_keeps_iou_at_the_threshold():
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 3], [20, 20, 29, 29]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    # +1 areas: box 1 covers 10×4 = 40 of box 0's 10×10 = 100 pixels → IoU exactly 0.4: kept
    assert nms(boxes, scores, 0.4).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.39).tolist() == [0, 2]
    # a better-scored box suppresses by IoU 9·9 / (100 + 100 − 81) = 0.68; order is by score
    shifted = np.concatenate([boxes, [[1, 1, 10, 10]]]).astype(np.float32)
    assert nms(shifted, np.append(scores, 0.95).astype(np.float32), 0.4).tolist() == [3, 1, 2]
    assert nms(boxes[:0], scores[:0]).tolist() == []


def _frame(rows: dict[int, int], hits: dict[tuple[int, int], float]) -> dict[str, np.ndarray]:
    outputs = {}
    for stride, n in rows.items():
        outputs[f"score_{stride}"] = np.zeros((n, 1), np.float32)
        outputs[f"bbox_{stride}"] = np.ones((n, 4), np.float32)
        outputs[f"kps_{stride}"] = np.zeros((n, 10), np.float32)
    for (stride, row), score in hits.items():
        outputs[f"score_{stride}"][row] = score
    return outputs


def test_candidates_threshold_scale_by_stride_and_sort():
    rows = {s: KPS.rows(s, 64, 64) for s in KPS.strides}  # 128, 32, 8
    outputs = _frame(rows, {(8, 5): 0.6, (32, 7): 0.9, (16, 0): 0.49})
    found = candidates(outputs, KPS, 64, 64, det_thresh=0.5)
    assert found.scores.tolist() == pytest.approx([0.9, 0.6])
    # stride 32, row 7 → cell 3 (x 1, y 1), centre (32, 32); distances 1 × 32
    assert found.boxes[0].tolist() == [0.0, 0.0, 64.0, 64.0]
    # stride 8, row 5 → cell 2 (x 2, y 0), centre (16, 0); distances 1 × 8
    assert found.boxes[1].tolist() == [8.0, -8.0, 24.0, 8.0]
    assert found.landmarks[0].tolist() == [[32.0, 32.0]] * 5
    with pytest.raises(SpecError, match="kps_8 has shape"):
        candidates(outputs | {"kps_8": np.zeros((3, 10), np.float32)}, KPS, 64, 64)
    empty = decode_frame(_frame(rows, {}), KPS, 64, 64)
    assert len(empty) == 0 and empty.landmarks.shape == (0, 5, 2)


def test_max_num_prefers_large_central_faces():
    boxes = np.array([[0, 0, 50, 50], [40, 40, 80, 80], [100, 100, 190, 190]], np.float32)
    found = Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), None)
    assert limit_faces(found, 1, (120, 120)).boxes.tolist() == [[40, 40, 80, 80]]  # central beats larger
    assert limit_faces(found, 1, (120, 120), metric="max").boxes.tolist() == [[100, 100, 190, 190]]
    assert len(limit_faces(found, 0, (120, 120))) == 3


def _iou(a: np.ndarray, b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


HAND_LABELLED_KEYPOINTS = {
    "newton.png": [(371, 143), (419, 145), (399, 177), (371, 197), (409, 199)],
    "gauss.png": [(469, 353), (594, 346), (549, 436), (487, 489), (589, 482)],
}
FACE_COUNTS = {"t1.jpg": 6, "two_people.jpg": 2, "no_face.png": 0, "view_no_face.jpg": 0}


@pytest.mark.parametrize("model", ["det_500m.onnx", "det_2.5g.onnx"])
def test_real_detectors_find_the_hand_labelled_faces(models_dir: Path, photos: list[Path], model: str):
    images_dir = photos[0].parent
    truth = json.loads((images_dir / "faces_ground_truth.json").read_text())["images"]
    names = sorted(truth) + sorted(FACE_COUNTS)
    images = [load_image(images_dir / n) for n in names]
    with OnnxRuntimeRunner(models_dir / model) as runner:  # official 2-D layout, batch 1
        faces = dict(zip(names, detect_faces(runner, images, KPS, (640, 640)), strict=False))
    for name, boxes in truth.items():
        for box in boxes:  # dlib-style square labels: IoU ≥ 0.5 with the detector's boxes
            assert max(_iou(b, box) for b in faces[name].boxes) >= 0.5, (model, name, box)
    for name, points in HAND_LABELLED_KEYPOINTS.items():
        assert len(faces[name]) == 1
        error = np.linalg.norm(faces[name].landmarks[0] - np.array(points, np.float32), axis=1)
        assert error.max() < 0.1 * (faces[name].boxes[0, 2] - faces[name].boxes[0, 0]), (model, name, error)
    for name, count in FACE_COUNTS.items():
        assert len(faces[name]) == count, (model, name)


def test_batched_keepbatch_and_official_layout_decode_the_same_faces(models_dir: Path, photos: list[Path]):
    images = [load_image(p) for p in photos[:6]]
    with OnnxRuntimeRunner(models_dir / "det_500m.onnx") as official:
        expected = detect_faces(official, images, KPS, (640, 640))
    with OnnxRuntimeRunner(models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx") as keepbatch:  # same weights, 3-D
        got = detect_faces(keepbatch, images, KPS, (640, 640))
    assert [len(d) for d in got] == [len(d) for d in expected] and sum(map(len, expected)) > 0
    for a, b in zip(got, expected, strict=False):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
