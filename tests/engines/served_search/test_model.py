"""face_search's load (no server): the served model reads its search.json and opens the gallery when Triton loads
it, so a gallery swapped for one of other models since ``triton`` checked it fails the load in one line."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from facebatch.engines.served_search.checks import OtherModels
from facebatch.engines.served_search.model import FaceSearchModel
from tests.engines.served_search.galleries import DETECTOR_SIZE, SHA256, commit, new_gallery, unit


class Loaded(FaceSearchModel):
    backend = SimpleNamespace()  # what model.py hands in; loading uses none of the backend's utilities


def load(tmp_path: Path, gallery: Path, parameters: dict[str, str] | None = None) -> Loaded:
    version = tmp_path / "repository" / "face_search" / "1"
    version.mkdir(parents=True)
    search = {"gallery": str(gallery), "pipeline": "face_pipeline", "sha256": SHA256, "detector_size": DETECTOR_SIZE}
    (version / "search.json").write_text(json.dumps(search))
    config = {"parameters": {key: {"string_value": value} for key, value in (parameters or {}).items()}}
    args = {
        "model_config": json.dumps(config),
        "model_name": "face_search",
        "model_repository": str(version.parent),
        "model_version": "1",
    }
    model = Loaded()
    model.initialize(args)
    return model


def test_the_gallery_is_opened_at_load_with_the_configured_top_k_and_threshold(tmp_path: Path):
    gallery = tmp_path / "gallery"
    commit(new_gallery(gallery), {"ada": unit(1), "bob": unit(2)})
    model = load(tmp_path, gallery, {"top_k": "1", "threshold": "0.5"})
    assert (model.top_k, model.threshold, model.gallery.loads) == (1, 0.5, 1)


def test_a_gallery_of_other_models_fails_the_load_in_one_line(tmp_path: Path):
    gallery = tmp_path / "gallery"
    commit(new_gallery(gallery, {**SHA256, "detector": "0" * 64}), {"ada": unit(1)})
    with pytest.raises(OtherModels, match="another detector") as refused:
        load(tmp_path, gallery)
    assert "\n" not in str(refused.value)
