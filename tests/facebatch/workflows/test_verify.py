"""verify's use case without running a model: the photos it takes as frames, the paths a Python caller may give
as text, and report files refused before any check runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebatch.core.errors import OutputError, SpecError
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.workflows.verify import VerifyModelOptions, verify


def test_frames_come_from_photos_and_folders_each_once(photos: list[Path]):
    folder = photos[0].parent
    found = proof_photos([photos[0], folder])
    assert found[0] == photos[0] and len(found) == len(set(found))
    assert found[1:] == [p for p in sorted(folder.iterdir()) if p in found[1:]]  # a folder's photos in name order


def test_paths_that_name_no_photo_are_refused_by_field(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a photo")
    for path, words in (
        (tmp_path / "missing.jpg", "does not exist"),
        (
            tmp_path / "empty",
            "no photos \\(.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff\\) in .*empty or its subfolders",
        ),
        (tmp_path / "notes.txt", "is not an image file"),
    ):
        with pytest.raises(SpecError, match=words) as refused:
            proof_photos([path])
        assert refused.value.field == "photos" and str(refused.value).startswith("photos")


def test_text_paths_become_paths_and_torch_stays_a_name():
    options = VerifyModelOptions(model="m.onnx", reference="torch", photos=["a.jpg"], json="r.json", sizes=[[64, 64]])
    assert options.model == Path("m.onnx") and options.reference == "torch" and options.json == Path("r.json")
    assert options.photos == (Path("a.jpg"),) and options.sizes == ((64, 64),)
    assert VerifyModelOptions(model="m.onnx", reference="other.onnx").reference == Path("other.onnx")


def test_a_report_file_over_an_input_is_refused_before_any_check(models_dir: Path):
    model = models_dir / "det_500m.onnx"
    with pytest.raises(OutputError, match="json .* is one of the inputs") as refused:
        verify(VerifyModelOptions(model=model, markdown=None, json=model))
    assert refused.value.field == "json"
