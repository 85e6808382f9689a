"""make large-photos: the fixtures upscaled, their hand labels scaled with them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from facebatch.engines.bench.large_photos import main
from facebatch.engines.evaluation.agreement import GROUND_TRUTH


def test_photos_are_upscaled_and_labels_follow(photos: list[Path], tmp_path: Path, capsys):
    source = photos[0].parent
    assert main(["--images", str(source), "--out", str(tmp_path / "large"), "--long-side", "1600"]) == 0
    made = sorted((tmp_path / "large").glob("*.jpg"))
    assert len(made) == len(photos)
    truth = json.loads((source / GROUND_TRUTH).read_text())["images"]
    scaled = json.loads((tmp_path / "large" / GROUND_TRUTH).read_text())
    assert "upscaled" in scaled["made_from"]
    for name, boxes in truth.items():
        small = cv2.imread(str(source / name))
        large = cv2.imread(str(tmp_path / "large" / f"{Path(name).stem}.jpg"))
        assert max(large.shape[:2]) == 1600
        factor = 1600 / max(small.shape[:2])
        np.testing.assert_allclose(scaled["images"][f"{Path(name).stem}.jpg"], np.array(boxes) * factor, atol=0.06)


def test_an_empty_folder_is_one_clear_line(tmp_path: Path, capsys):
    assert main(["--images", str(tmp_path), "--out", str(tmp_path / "large")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
