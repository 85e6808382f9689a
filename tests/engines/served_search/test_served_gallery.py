"""The served gallery's reload check, on real galleries (no server): a committed version is taken when it opens whole,
the same version is not read again, a version whose index lags its shards (an index run between commits) leaves the
last whole one answering, a version made with other models is refused until the gallery changes again."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.store import Gallery
from facebatch.engines.served_search.checks import OtherModels
from facebatch.engines.served_search.served_gallery import ServedGallery, manifest_stamp
from tests.engines.served_search.galleries import DETECTOR_SIZE, SHA256, commit, new_gallery, unit


def subjects_found(served: ServedGallery, seed: int) -> str:
    (matches,) = served.current().search(unit(seed)[None], 1, 0.5)
    return matches[0].record["subject"]


def test_a_new_committed_version_is_taken_once_it_is_whole(tmp_path: Path):
    root = tmp_path / "gallery"
    commit(new_gallery(root), {"ada": unit(1), "bob": unit(2)})
    served = ServedGallery(root, SHA256, DETECTOR_SIZE)
    assert subjects_found(served, 2) == "bob" and served.loads == 1
    first = served.current()
    assert served.current() is first and served.loads == 1  # the same version: one stat, nothing read again

    gallery = Gallery.open(root)
    commit(gallery, {"cyd": unit(3)}, index=False)  # a shard committed, its index not built yet (a run in progress)
    assert served.current() is first and "covers 1 of its 2 shards" in (served.pending or "")
    assert subjects_found(served, 3) != "cyd"  # the last whole version answers meanwhile

    commit(Gallery.open(root), {"dan": unit(4)})  # the run ends: the index covers every shard
    assert subjects_found(served, 3) == "cyd" and subjects_found(served, 4) == "dan"
    assert served.loads == 2 and served.pending is None and served.stamp == manifest_stamp(root)


def test_a_gallery_of_other_models_is_refused_at_load_and_when_swapped_in(tmp_path: Path):
    other = tmp_path / "other"
    commit(new_gallery(other, {**SHA256, "embedder": "f" * 64}), {"eve": unit(5)})
    with pytest.raises(OtherModels, match="another embedder .*embeddings of two models must not mix") as refused:
        ServedGallery(other, SHA256, DETECTOR_SIZE).current()
    assert refused.value.field == "gallery" and "\n" not in str(refused.value)

    root = tmp_path / "gallery"
    commit(new_gallery(root), {"ada": unit(1)})
    served = ServedGallery(root, SHA256, DETECTOR_SIZE)
    assert subjects_found(served, 1) == "ada"
    (root / "manifest.json").replace(root / "manifest.kept")
    (other / "manifest.json").rename(root / "manifest.json")  # another gallery's manifest swapped in
    with pytest.raises(OtherModels):
        served.current()
    with pytest.raises(OtherModels):  # refused on every request until the gallery changes again
        served.current()
    (root / "manifest.kept").replace(root / "manifest.json")
    assert subjects_found(served, 1) == "ada"


def test_a_gallery_indexed_at_another_detector_size_is_refused(tmp_path: Path):
    root = tmp_path / "gallery"
    commit(new_gallery(root), {"ada": unit(1)})
    with pytest.raises(
        OtherModels, match="indexed with the detector at 640x640, the served pipeline runs it at 320x320"
    ):
        ServedGallery(root, SHA256, [320, 320]).current()


def test_the_first_load_of_a_gallery_that_is_not_whole_fails(tmp_path: Path):
    root = tmp_path / "gallery"
    commit(new_gallery(root), {"ada": unit(1)}, index=False)
    with pytest.raises(GalleryError, match="has no index yet"):
        ServedGallery(root, SHA256, DETECTOR_SIZE).current()


def test_a_gallery_indexed_in_bf16_is_refused(tmp_path: Path):
    root = tmp_path / "gallery"
    commit(new_gallery(root, precision="bf16"), {"ada": unit(1)})
    with pytest.raises(OtherModels, match="detector computing in bf16.*two precisions must not mix") as refused:
        ServedGallery(root, SHA256, [640, 640]).current()
    assert "\n" not in str(refused.value)
