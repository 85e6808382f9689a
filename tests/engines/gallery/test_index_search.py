"""index and search on the real fixtures, locally: identification (enrol one photo of each
person, query the other), every face of the fixture photos with resume, changed photos, two
models refused, and the index types against exact search."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.faiss_index import IndexChoice, parse_index_parameters
from facebatch.engines.gallery.index_job import index_photos
from facebatch.engines.gallery.photos import collect_photos
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.gallery.store import Gallery
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD as DEFAULT_THRESHOLD
from facebatch.engines.pipeline.opening import open_pipeline

from .conftest import IDENTITIES, NO_FACE, request


def query_vectors(detector_file, embedder_file, paths: list[Path]) -> list[np.ndarray]:
    with open_pipeline(detector_file, embedder_file) as pipeline:
        return [result.embeddings for result in pipeline.run(paths)]


def test_subjects_come_from_the_folder_layout_or_a_csv(people: Path, images_dir: Path, tmp_path: Path) -> None:
    by_folder = collect_photos([people])
    assert sorted(p.subject for p in by_folder) == sorted(IDENTITIES)
    assert all(Path(p.path).is_absolute() for p in by_folder)
    table = tmp_path / "subjects.csv"
    table.write_text(f"path,subject\n{images_dir / 'obama_2.jpg'},Barack Obama\n")
    named = collect_photos([images_dir / "obama_2.jpg", images_dir / "biden_2.jpg"], table)
    assert [(Path(p.path).name, p.subject) for p in named] == [("obama_2.jpg", "Barack Obama"), ("biden_2.jpg", None)]
    table.write_text("obama_2.jpg\n")
    with pytest.raises(SpecError, match="line 1 is not 'path,subject'"):
        collect_photos([images_dir], table)


def test_identification_enrol_one_photo_each_query_the_other(
    enrolled: Path, detector_file, embedder_file, images_dir: Path
) -> None:
    manifest = json.loads((enrolled / MANIFEST).read_text())
    assert manifest["counts"] == {"photos": 3, "faces": 3, "failed": 0, "shards": 1}
    assert manifest["models"]["embedder"]["sha256"] == embedder_file.sha256
    assert manifest["embedding_size"] == 128 and manifest["index"]["type"] == "flat"
    searcher = GallerySearch(enrolled)
    queries = [images_dir / f"{subject}_2.jpg" for subject in IDENTITIES]
    vectors = query_vectors(detector_file, embedder_file, queries)
    assert [len(v) for v in vectors] == [1, 1, 1]
    matches = searcher.search(np.concatenate(vectors), top_k=3, threshold=DEFAULT_THRESHOLD)
    for subject, found in zip(IDENTITIES, matches, strict=True):
        assert found[0].record["subject"] == subject and found[0].known, found[0]
        assert all(not m.known for m in found[1:]), found  # the other two are below the threshold
        assert found[0].cosine > 0.5 and found[1].cosine < 0.2
    faceless = query_vectors(detector_file, embedder_file, [images_dir / name for name in NO_FACE])
    assert [len(v) for v in faceless] == [0, 0]  # no face: nothing to search, no match


def shard_rows(gallery: Path) -> list[dict]:
    rows = []
    for entry in json.loads((gallery / MANIFEST).read_text())["shards"]:
        rows += pq.read_table(gallery / "shards" / entry["file"]).to_pylist()
    return rows


def test_every_fixture_face_is_indexed_and_found_as_itself(fixture_gallery: Path) -> None:
    manifest = json.loads((fixture_gallery / MANIFEST).read_text())
    assert manifest["counts"]["photos"] == 17 and manifest["counts"]["faces"] == 188
    assert manifest["counts"]["shards"] == 5  # 4 photos per shard
    rows = shard_rows(fixture_gallery)
    faceless = {Path(r["photo"]).name for r in rows if r["face"] < 0}
    assert faceless == set(NO_FACE)
    faces = [r for r in rows if r["face"] >= 0]
    vectors = np.array([r["embedding"] for r in faces], np.float32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    found = GallerySearch(fixture_gallery).search(vectors, top_k=1, threshold=0.0)
    assert all(abs(hits[0].cosine - 1.0) < 1e-4 for hits in found)
    assert [(hits[0].record["photo"], hits[0].record["face"]) for hits in found] == [
        (r["photo"], r["face"]) for r in faces
    ]


def test_a_second_run_indexes_only_what_is_new_or_changed(
    images_dir: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama_1.jpg", "biden_1.jpg", "two_people.jpg", "no_face.png"):
        shutil.copy(images_dir / name, photos / name)
    out = tmp_path / "gallery"
    first = index_photos(request([photos], out, detector_file, embedder_file))
    assert (first.photos_run, first.gallery_faces) == (4, 4)
    again = index_photos(request([photos], out, detector_file, embedder_file))
    assert (again.photos_run, again.photos_unchanged, again.index_built) == (0, 4, False)

    shutil.copy(images_dir / "rob_lowe_1.jpg", photos / "rob_lowe_1.jpg")  # new
    shutil.copy(images_dir / "biden_2.jpg", photos / "biden_1.jpg")  # changed: another photo under the same name
    os.utime(photos / "biden_1.jpg", ns=(1, 1))
    third = index_photos(request([photos], out, detector_file, embedder_file))
    assert (third.photos_run, third.photos_unchanged, third.faces_added) == (2, 3, 2)
    assert (third.gallery_photos, third.gallery_faces, third.shards) == (5, 5, 2)  # biden_1's old row is dead
    (biden_2,) = query_vectors(detector_file, embedder_file, [images_dir / "biden_2.jpg"])
    (hit,) = GallerySearch(out).search(biden_2, top_k=1, threshold=DEFAULT_THRESHOLD)[0:1][0][:1]
    assert Path(hit.record["photo"]).name == "biden_1.jpg" and hit.cosine > 0.9999  # the new photo, not the old one


def test_a_gallery_of_other_models_or_faces_is_refused_by_name(
    enrolled: Path, people: Path, detector_file, embedder_file, models_dir: Path
) -> None:
    from facebatch.configs.model_file import read_model_file

    other = read_model_file(models_dir / "det_500m.onnx")
    with pytest.raises(
        GalleryError, match=r"detector det_500m.* is not the one the gallery .* was built with: .*must not mix"
    ):
        index_photos(request([people], enrolled, other, embedder_file, faces="best"))
    with pytest.raises(GalleryError, match=r"faces all is not how the gallery .* was built \(faces best\)"):
        index_photos(request([people], enrolled, detector_file, embedder_file, faces="all"))


@pytest.mark.parametrize(
    ("kind", "parameters", "recall_at_1"),
    [("hnsw", {}, 1.0), ("ivf", {"nprobe": 1000}, 1.0), ("ivf", {"nprobe": 1}, 0.5), ("ivfpq", {"nprobe": 1000}, 0.9)],
)
def test_approximate_indexes_find_what_exact_search_finds(
    fixture_gallery: Path, detector_file, embedder_file, tmp_path: Path, kind: str, parameters: dict, recall_at_1: float
) -> None:
    """Each gallery face as a query (188): top-1 agreement with IndexFlatIP. hnsw and ivf probing every
    list are exact here; ivfpq compresses each 128-d vector to 16 bytes; all four measured 1.000 on these
    self-queries (a query is its own nearest), so the bounds only catch an index that finds the wrong rows."""
    gallery = tmp_path / "gallery"
    shutil.copytree(fixture_gallery, gallery)
    rows = [r for r in shard_rows(gallery) if r["face"] >= 0]
    queries = np.array([r["embedding"] for r in rows], np.float32)
    exact = [hits[0].record["row"] for hits in GallerySearch(gallery).search(queries, 1, 0.0)]
    summary = index_photos(request([], gallery, detector_file, embedder_file, index=IndexChoice(kind, parameters)))
    assert summary.index_built and summary.index.startswith(
        {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat", "ivfpq": "IndexIVFPQ"}[kind]
    )
    recorded = json.loads((gallery / MANIFEST).read_text())["index"]
    assert recorded["type"] == kind and all(recorded["parameters"][k] == v for k, v in parameters.items())
    approximate = [hits[0].record["row"] for hits in GallerySearch(gallery).search(queries, 1, 0.0)]
    agreement = np.mean(np.array(exact) == np.array(approximate))
    print(f"{kind} {parameters}: recall@1 {agreement:.3f}")
    assert agreement >= recall_at_1


def test_index_parameters_are_checked() -> None:
    assert parse_index_parameters(["nprobe=32", "ef-search=10"]) == {"nprobe": 32, "ef_search": 10}
    with pytest.raises(SpecError, match="is not NAME=INTEGER"):
        parse_index_parameters(["nprobe"])
    with pytest.raises(SpecError, match="has no parameter nprobe .*takes m, ef_construction, ef_search"):
        IndexChoice("hnsw", {"nprobe": 4})
    with pytest.raises(SpecError, match="is not one of auto, flat, hnsw, ivf, ivfpq"):
        IndexChoice("lsh")
    with pytest.raises(SpecError, match="must divide the embedding size 128"):
        IndexChoice("ivfpq", {"m": 7}).resolved(1000, 128)
    assert IndexChoice("ivfpq").resolved(188, 128) == {"nlist": 4, "nprobe": 0, "m": 16, "nbits": 7}


def test_damaged_shards_and_indexes_are_named_with_how_to_rebuild(
    fixture_gallery: Path, images_dir: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    gallery = tmp_path / "gallery"
    shutil.copytree(fixture_gallery, gallery)
    (gallery / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(
        GalleryError, match=r"index .*index.faiss is corrupt .*rebuild it by indexing into .* again \(no photos needed"
    ):
        GallerySearch(gallery)
    index_photos(request([], gallery, detector_file, embedder_file))  # rebuilt from the shards, no photos
    assert GallerySearch(gallery).index.ntotal == 188

    shard = gallery / "shards" / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    searcher = GallerySearch(gallery)  # the index reads; the damaged shard shows when a match is in it
    rows = [r for r in shard_rows(fixture_gallery) if r["face"] >= 0]
    with pytest.raises(
        GalleryError, match="shard .*shard-00001.parquet is corrupt .*indexing the same photos into .* again repairs it"
    ):
        searcher.search(np.array([r["embedding"] for r in rows], np.float32), 1, 0.0)
    repaired = index_photos(request([images_dir], gallery, detector_file, embedder_file, photos_per_shard=4))
    assert repaired.photos_run == 4 and repaired.gallery_faces == 188  # the dropped shard's photos, again
    assert len(GallerySearch(gallery).search(np.array([rows[0]["embedding"]]), 1, 0.0)[0]) == 1


def test_a_gallery_path_that_is_a_file_or_not_a_gallery_or_empty_is_refused(
    images_dir: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(GalleryError, match="is a file"):
        GallerySearch(tmp_path / "file")
    with pytest.raises(GalleryError, match="is not a gallery .*make one by indexing photos into it"):
        GallerySearch(tmp_path)
    out = tmp_path / "faceless"
    summary = index_photos(request([images_dir / n for n in NO_FACE], out, detector_file, embedder_file))
    assert (summary.gallery_photos, summary.gallery_faces) == (2, 0)
    with pytest.raises(GalleryError, match="holds no face"):
        GallerySearch(out)
    assert Gallery.open(out).manifest.faces == 0
