"""``release --check`` (``workflows/release/check.py``) refuses before the slow work what it could only fail
after it: a release whose artifacts need photos, checked without them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError
from facebatch.workflows.release import check_artifacts
from facebatch.workflows.release.check import check_release
from facebatch.workflows.release.manifest import MANIFEST


def handmade_release(folder: Path, detector: Path, photos: list[Path]) -> Path:
    """A release folder holding one trained detector as ``facebatch release`` lists it (its files with their
    sha256, its artifacts, the photos it was made with): enough for --check to walk, hash and verify."""
    (folder / "onnx").mkdir(parents=True)
    shutil.copy(detector, folder / "onnx" / detector.name)
    name = f"onnx/{detector.name}"
    files = {name: {"sha256": file_sha256(folder / name), "size": (folder / name).stat().st_size}}
    manifest = {"files": files, "artifacts": [name], "references": {}, "options": {"photos": [str(p) for p in photos]}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_a_trained_detector_checked_without_photos_is_refused_before_it_is_verified(
    models_dir: Path, photos: list[Path], tmp_path: Path, monkeypatch
):
    """It used to run every verify (85 s on a real release) and then fail "no frame has a detection"."""
    folder = handmade_release(tmp_path / "r", models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx", photos[:2])
    verified = []
    monkeypatch.setattr(check_artifacts, "verify_model", lambda *a, **k: verified.append(a))
    with pytest.raises(SpecError) as refused:
        check_release(folder)
    assert refused.value.field == "photos" and not verified
    assert str(refused.value) == (
        "photos are needed: onnx/scrfd_500m_bnkps_640_keepbatch.onnx is a face detector with trained weights, which "
        "finds no face in noise frames: its strict verify compares the faces it decodes alone and in a batch; give "
        f"the photos it was made with (its manifest records them in '{photos[0].parent}')"
    )
    monkeypatch.undo()
    checked = check_release(folder, photos[:1])  # with photos it is judged (it keeps a batch of 1: check 2 fails)
    assert checked.failing and "2 layout" in checked.failing[0] and not checked.missing
