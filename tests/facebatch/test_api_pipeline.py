"""The face pipeline's Python API on photos held in memory, as insightface users hold them: decoded BGR uint8
arrays (``cv2.imread``'s, or a PIL image turned to BGR), a photo file's bytes, and paths, mixed in one call. The
faces are exactly those of the same photos read from their files; anything else is refused naming the item; the
pixel limit holds for them too. Real models (the official SCRFD-500M and MobileFaceNet files) and photos."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import facebatch
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.options import PipelineOptions


@pytest.fixture(scope="module")
def models(models_dir: Path) -> tuple[Path, Path]:
    return models_dir / "det_500m.onnx", models_dir / "mobilefacenet_128d.onnx"


def pil_bgr(path: Path) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:, :, ::-1])


def in_memory(photos: list[Path]) -> list[object]:
    """Each photo in another form, in turn: decoded by cv2, decoded by PIL, its bytes, its path as a str."""
    forms = [lambda p: cv2.imread(str(p)), pil_bgr, lambda p: p.read_bytes(), str]
    return [forms[index % len(forms)](photo) for index, photo in enumerate(photos)]


def assert_same_faces(got: ImageFaces, expected: ImageFaces) -> None:
    assert got.ok and expected.ok and got.image_size == expected.image_size
    assert len(got) == len(expected)
    if len(expected):
        for name in ("boxes", "scores", "landmarks"):
            np.testing.assert_array_equal(getattr(got.faces, name), getattr(expected.faces, name), err_msg=name)
        np.testing.assert_array_equal(got.embeddings, expected.embeddings)


def test_arrays_bytes_and_paths_mixed_give_exactly_the_faces_of_the_files(models, photos: list[Path]):
    with facebatch.open_pipeline(*models) as pipeline:
        expected = list(pipeline.run(photos))
        got = list(pipeline.run(in_memory(photos)))
    assert sum(len(r) for r in expected) > 20  # a real comparison
    for index, (result, reference) in enumerate(zip(got, expected, strict=True)):
        assert_same_faces(result, reference)
        in_file = index % 4 == 3
        assert result.path == (photos[index] if in_file else Path(f"photos[{index}]")), result.path


def test_detect_and_embed_take_photos_in_memory_and_name_them_by_place(models, photos: list[Path], tmp_path: Path):
    chosen = [p for p in photos if p.name in ("two_people.jpg", "obama_1.jpg", "no_face.png")]
    detector, embedder = models
    items = [cv2.imread(str(chosen[0])), chosen[1].read_bytes(), chosen[2]]
    found = facebatch.detect(items, detector, json=tmp_path / "faces.json", draw=tmp_path / "drawn")
    assert [r.path.name for r in found.photos] == ["photos[0]", "photos[1]", chosen[2].name]
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == sorted(
        ["photos[0].png", "photos[1].png", chosen[2].name]
    )
    shown = [image["path"] for image in json.loads((tmp_path / "faces.json").read_text())["images"]]
    assert shown == ["photos[0]", "photos[1]", str(chosen[2])]
    embedded = facebatch.embed(items, tmp_path / "faces.npz", detector, embedder)
    from_files = facebatch.embed(chosen, tmp_path / "files.npz", detector, embedder)
    for got, expected in zip(embedded.photos, from_files.photos, strict=True):
        assert_same_faces(got, expected)
    np.testing.assert_array_equal(
        np.load(tmp_path / "faces.npz")["embeddings"], np.load(tmp_path / "files.npz")["embeddings"]
    )


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (lambda image: image.astype(np.float32), "photos[1] is a float32 array of shape"),
        (lambda image: image[:, :, 0], "photos[1] is a uint8 array of shape (1137, 910); give a decoded BGR uint8"),
        (lambda image: np.dstack([image, image[:, :, :1]]), "photos[1] is a uint8 array of shape (1137, 910, 4)"),
        (lambda image: 3, "photos[1] is a int; give a path, a photo file's bytes, or a decoded BGR uint8 array"),
        (lambda image: "no such photo.jpg", "photos[1] is the string 'no such photo.jpg', which names no file"),
    ],
    ids=["float", "gray", "bgra", "int", "missing-str"],
)
def test_anything_else_is_refused_naming_the_item_before_any_work(models, photos: list[Path], bad, said):
    image = cv2.imread(str(next(p for p in photos if p.name == "obama_1.jpg")))
    with facebatch.open_pipeline(models[0]) as pipeline:
        with pytest.raises(SpecError) as refused:
            next(pipeline.run([image, bad(image)]))
    assert said in str(refused.value) and refused.value.field == "photos", str(refused.value)
    if not isinstance(bad(image), str):  # detect takes a str as a file or folder: it says it does not exist
        with pytest.raises(SpecError, match=f"^{said[:20].replace('[', '.').replace(']', '.')}"):
            facebatch.detect([image, bad(image)], models[0])
    with pytest.raises(SpecError, match="photos is one ndarray, not a list of photos"):
        next(facebatch.open_pipeline(models[0]).__enter__().run(image))


def test_the_pixel_limit_holds_for_arrays_and_bytes(models, photos: list[Path]):
    photo = next(p for p in photos if p.name == "obama_1.jpg")  # 910x1137
    with facebatch.open_pipeline(models[0], settings=PipelineOptions(max_photo_pixels=500_000)) as pipeline:
        results = list(pipeline.run([cv2.imread(str(photo)), photo.read_bytes(), photo]))
    for result in results:
        assert not result.ok and result.error_field == "max_photo_pixels", result
        assert "is 910x1137 (1.03 MP), above the limit of 0.5 MP" in result.error
    assert [r.error.split(" is ")[0] for r in results] == ["image 'photos[0]'", "image 'photos[1]'", f"image '{photo}'"]
