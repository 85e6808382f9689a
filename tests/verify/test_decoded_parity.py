"""Check 4, decoded: the same faces on both sides, within IoU, score and landmark limits;
faces at the threshold's edge are not counted as missing."""

import numpy as np

from facebatch.configs.spec import HeadLayout
from facebatch.engines.pipeline.scrfd_decode import box_iou
from facebatch.verify.decoded_parity import decoded_agreement

LAYOUT = HeadLayout(strides=(8, 16, 32), anchors_per_location=2, use_kps=True)
SIZE = (64, 64)


def outputs(faces: list[tuple[int, float, float]], frames: int = 1) -> dict[str, np.ndarray]:
    """Canonical outputs with a face at stride-8 row ``row``: (row, score, landmark shift in stride units)."""
    named = {}
    for stride in LAYOUT.strides:
        rows = LAYOUT.rows(stride, *SIZE)
        named[f"score_{stride}"] = np.zeros((frames, rows, 1), np.float32)
        named[f"bbox_{stride}"] = np.full((frames, rows, 4), 1.0, np.float32)
        named[f"kps_{stride}"] = np.zeros((frames, rows, 10), np.float32)
    for row, score, shift in faces:
        named["score_8"][:, row, 0] = score
        named["bbox_8"][:, row] = 2.0
        named["kps_8"][:, row] = shift
    return named


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], np.float32)
    assert box_iou(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)).round(4).tolist() == [
        [1.0, 0.3333, 0.0]
    ]


def test_identical_boxes_match_even_when_inverted():
    inverted = np.array(
        [[10, 10, 4, 12], [3, 3, 3, 3]], np.float32
    )  # x2 < x1 and an empty box: what noise frames regress
    assert np.diag(box_iou(inverted, inverted)).tolist() == [1.0, 1.0]
    assert box_iou(inverted, inverted + 0.5)[0, 0] == 0.0


def test_identical_raw_outputs_never_decode_differently():
    """Random distances (many boxes inverted, as on noise frames) on both sides, bit for bit the same: the same faces.
    It used to report 73 of 89 faces 'not found' and 73 'extra': an inverted box had IoU 0 with itself."""
    rng = np.random.default_rng(0)
    raw = {}
    for stride in LAYOUT.strides:
        rows = LAYOUT.rows(stride, *SIZE)
        raw[f"score_{stride}"] = rng.uniform(0, 1, (2, rows, 1)).astype(np.float32)
        raw[f"bbox_{stride}"] = rng.normal(0, 1, (2, rows, 4)).astype(np.float32)
        raw[f"kps_{stride}"] = rng.normal(0, 1, (2, rows, 10)).astype(np.float32)
    report = decoded_agreement("batch 2", raw, {k: v.copy() for k, v in raw.items()}, LAYOUT, SIZE)
    assert report.passed and report.faces > 50, report.summary()


def test_the_same_faces_agree_and_the_summary_says_how_closely():
    report = decoded_agreement(
        "batch 1", outputs([(10, 0.9, 0.0), (60, 0.8, 0.0)]), outputs([(10, 0.9, 0.0), (60, 0.8, 0.0)]), LAYOUT, SIZE
    )
    assert report.passed and report.faces == 2
    assert "the same 2 faces in 1 frames, min IoU 1.0000, box edges within 0 px" in report.summary()


def test_landmarks_more_than_a_pixel_apart_fail():
    # 0.2 stride units at stride 8 = 1.6 px
    report = decoded_agreement("batch 1", outputs([(10, 0.9, 0.2)]), outputs([(10, 0.9, 0.0)]), LAYOUT, SIZE)
    assert not report.passed and "landmarks 1.6 px > 1 px" in report.failures()[0]


def test_scores_beyond_the_tolerance_fail():
    report = decoded_agreement("batch 1", outputs([(10, 0.95, 0.0)]), outputs([(10, 0.9, 0.0)]), LAYOUT, SIZE)
    assert not report.passed and "score diff 0.05 > 0.01" in report.summary()


def test_a_missing_face_fails_but_one_at_the_threshold_edge_does_not():
    missing = decoded_agreement(
        "batch 1", outputs([(10, 0.9, 0.0)]), outputs([(10, 0.9, 0.0), (60, 0.8, 0.0)]), LAYOUT, SIZE
    )
    assert not missing.passed and "1 face(s) of the reference not found, 0 extra (of 2 vs 1)" in missing.failures()[0]
    edge = decoded_agreement(
        "batch 1",
        outputs([(10, 0.9, 0.0), (60, 0.497, 0.0)]),
        outputs([(10, 0.9, 0.0), (60, 0.503, 0.0)]),
        LAYOUT,
        SIZE,
    )
    assert edge.passed, edge.failures()  # 0.497 vs 0.503 around det_thresh 0.5: the same face


def test_frames_are_compared_one_by_one():
    ours, reference = outputs([(10, 0.9, 0.0)], frames=3), outputs([(10, 0.9, 0.0)], frames=3)
    ours["score_8"][2, 10, 0] = 0.0  # frame 2 loses its face
    report = decoded_agreement("batch 3", ours, reference, LAYOUT, SIZE)
    assert [f.frame for f in report.frames] == [0, 1, 2] and report.failures() == [
        "frame 2: 1 face(s) of the reference not found, 0 extra (of 1 vs 0)"
    ]
