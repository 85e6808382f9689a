from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.scrfd import SCRFD_NORMALIZE
from facebatch.engines.pipeline.preprocess import letterbox, load_image, noise_image, proof_frames
from facebatch.errors import SpecError


def test_letterbox_is_top_left_and_keeps_ratio():
    image = np.full((100, 200, 3), 255, dtype=np.uint8)  # wide
    canvas, scale = letterbox(image, 320, 320)
    assert canvas.shape == (320, 320, 3) and scale == pytest.approx(1.6)
    assert canvas[:160].min() == 255 and canvas[160:].max() == 0  # image on top, black padding below
    tall = np.full((300, 100, 3), 9, dtype=np.uint8)
    canvas, scale = letterbox(tall, 320, 320)
    assert canvas[:, :106].min() == 9 and canvas[:, 107:].max() == 0


def test_proof_frames_are_distinct(photos):
    frames = proof_frames(6, 64, 64, SCRFD_NORMALIZE, photos[:2])
    assert frames.shape == (6, 3, 64, 64) and frames.dtype == np.float32
    for i in range(6):
        for j in range(i + 1, 6):
            assert not np.array_equal(frames[i], frames[j])
    np.testing.assert_array_equal(noise_image(32, 32, 4), noise_image(32, 32, 4))


def test_unreadable_images_are_clear_errors(tmp_path: Path):
    with pytest.raises(SpecError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SpecError, match="cannot be decoded"):
        load_image(bad)
