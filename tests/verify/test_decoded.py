"""Check 3 on hand-made head outputs: counts, coordinates and scores are compared per frame,
and outputs are split per frame the way a batched consumer splits them."""

import numpy as np

from facebatch.configs.scrfd import HeadLayout
from facebatch.verify.decoded import DecodedIndependence, consumer_view

LAYOUT = HeadLayout((8, 16, 32), 2, True)
SIZE = (64, 64)
ROWS = {s: LAYOUT.rows(s, *SIZE) for s in LAYOUT.strides}


def frame_outputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for kind, channels in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride, rows in ROWS.items():
            values = rng.uniform(0.0, 0.3, (rows, channels)) if kind == "score" else rng.uniform(0.5, 2.0, (rows, channels))
            out[f"{kind}_{stride}"] = values.astype(np.float32)
    out["score_8"][[3, 40]] = 0.9  # two faces far apart
    out["score_32"][5] = 0.8
    return out


def batched(frames: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([f[name] for f in frames]) for name in frames[0]}


def alone(frames: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{name: a[None] for name, a in f.items()} for f in frames]


def test_identical_frames_pass_and_faces_are_counted():
    frames = [frame_outputs(i) for i in range(3)]
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(3, alone(frames), batched(frames))
    assert check.passed and check.detections_alone == sum(len(check._alone[i]) for i in range(3)) > 0
    assert check.batches[0].max_box_diff == 0.0


def test_a_face_lost_or_moved_inside_the_batch_is_reported():
    frames = [frame_outputs(i) for i in range(3)]
    inside = [{k: v.copy() for k, v in f.items()} for f in frames]
    inside[1]["score_32"][5] = 0.4  # frame 1 loses a face in the batch
    inside[2]["bbox_8"][3] += 1e-3  # frame 2's face moves by 8e-3 px > 1e-5 × 32
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(3, alone(frames), batched(inside))
    reasons = {m.frame: m.reason for m in check.batches[0].mismatches}
    assert not check.passed and set(reasons) == {1, 2}
    assert "detection(s) alone" in reasons[1] and "inside the batch" in reasons[1]
    assert "box 0.008 px" in reasons[2]


def test_folded_two_d_outputs_are_split_into_n_blocks():
    frames = [frame_outputs(i) for i in range(2)]
    folded = {name: np.concatenate([f[name] for f in frames]) for name in frames[0]}  # [2·rows, C]
    view = consumer_view(folded, LAYOUT, *SIZE, 2)
    np.testing.assert_array_equal(view["kps_16"][1], frames[1]["kps_16"])
    check = DecodedIndependence(LAYOUT, SIZE, atol=1e-5)
    check(2, alone(frames), {k: v[:-1] for k, v in folded.items()})  # odd rows: not divisible by 2
    assert not check.passed and "cannot be split into 2 frames" in check.error
