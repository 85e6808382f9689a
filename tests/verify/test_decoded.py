"""Check 3 on hand-made head outputs whose decoded faces are computed by hand: counts,
coordinates and scores are compared per frame, and outputs are split per frame the way a
batched consumer splits them."""

import numpy as np
import pytest

from facebatch.configs.spec import HeadLayout
from facebatch.verify.decoded import DecodedIndependence, consumer_view

LAYOUT = HeadLayout((8, 16, 32), 2, True)
SIZE = (64, 64)
ROWS = {s: LAYOUT.rows(s, *SIZE) for s in LAYOUT.strides}  # 128, 32, 8


def frame_outputs(faces: dict[tuple[int, int], tuple[float, list[float]]]) -> dict[str, np.ndarray]:
    """Scores 0 except the given (stride, row) → (score, [l, t, r, b] in stride units); bboxes 1,
    landmarks 0 (all five points at the anchor centre)."""
    out = {}
    for kind, channels in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride, rows in ROWS.items():
            out[f"{kind}_{stride}"] = np.full((rows, channels), 0.0 if kind != "bbox" else 1.0, np.float32)
    for (stride, row), (score, distances) in faces.items():
        out[f"score_{stride}"][row] = score
        out[f"bbox_{stride}"][row] = distances
    return out


# stride 8, row 3: cell 1 (x 1, y 0), anchor 1, centre (8, 0); distances ×8 → box (0, -16, 32, 32)
# stride 32, row 7: cell 3 (x 1, y 1), anchor 1, centre (32, 32); distances ×32 → box (0, 0, 64, 64)
FACE_8 = {(8, 3): (0.9, [1.0, 2.0, 3.0, 4.0])}
FACE_32 = {(32, 7): (0.8, [1.0, 1.0, 1.0, 1.0])}


def batched(frames: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([f[name] for f in frames]) for name in frames[0]}


def alone(frames: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{name: a[None] for name, a in f.items()} for f in frames]


def test_the_decoded_faces_are_the_hand_computed_ones():
    frames = [frame_outputs(FACE_8), frame_outputs(FACE_32), frame_outputs({})]
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(3, alone(frames), batched(frames))
    assert check.passed and check.to_dict()["detections_per_frame_alone"] == [1, 1, 0]
    assert (
        check._alone[0].boxes.tolist() == [[0.0, -16.0, 32.0, 32.0]]
        and check._alone[0].landmarks[0].tolist() == [[8.0, 0.0]] * 5
    )
    assert check._alone[1].boxes.tolist() == [[0.0, 0.0, 64.0, 64.0]] and check._alone[
        1
    ].scores.tolist() == pytest.approx([0.8])
    assert check.batches[0].detections == 2 and check.batches[0].max_box_diff == 0.0


def test_identical_outputs_alone_and_in_the_batch_differ_by_exactly_zero():
    """The same frame three times: whatever the batch does, each copy must decode like the frame alone."""
    frames = [frame_outputs(FACE_8 | FACE_32)] * 3
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(3, alone(frames), batched(frames))
    assert check.passed and check.detections_alone == 6
    result = check.batches[0]
    assert (result.max_box_diff, result.max_score_diff, result.max_landmark_diff) == (0.0, 0.0, 0.0)


def test_a_face_lost_or_moved_inside_the_batch_is_reported_by_how_much():
    frames = [frame_outputs(FACE_8), frame_outputs(FACE_32), frame_outputs(FACE_8)]
    inside = [{k: v.copy() for k, v in f.items()} for f in frames]
    inside[1]["score_32"][7] = 0.4  # frame 1 loses its face in the batch (below det_thresh 0.5)
    inside[2]["bbox_8"][3, 0] += 1e-3  # frame 2's face: left edge 1e-3 stride units = 8e-3 px further out
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(3, alone(frames), batched(inside))
    reasons = {m.frame: m.reason for m in check.batches[0].mismatches}
    assert not check.passed and set(reasons) == {1, 2}
    assert reasons[1] == "1 detection(s) alone, 0 inside the batch"
    assert reasons[2].startswith("same 1 detection(s) but box 0.008 px") and "(limit 0.00032)" in reasons[2]


def test_folded_two_d_outputs_are_split_into_n_blocks():
    frames = [frame_outputs(FACE_8), frame_outputs(FACE_32)]
    folded = {name: np.concatenate([f[name] for f in frames]) for name in frames[0]}  # [2·rows, C]
    view = consumer_view(folded, LAYOUT, *SIZE, 2)
    np.testing.assert_array_equal(view["kps_16"][1], frames[1]["kps_16"])
    np.testing.assert_array_equal(view["score_32"][1], frames[1]["score_32"])
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(2, alone(frames), {k: v[:-1] for k, v in folded.items()})  # odd rows: not divisible by 2
    assert not check.passed and "cannot be split into 2 frames" in check.error
