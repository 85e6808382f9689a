"""Recall as a measured property of every gallery index (engines/gallery/recall.py), on small synthetic
galleries built like benchmark.py's (identities of 10 noisy photos each): the tuned search parameter is the
smallest reaching the target, a target out of reach is refused with the best recall reached, auto takes flat
for a small gallery and the fastest approximate index meeting the target above its bound."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.gallery import recall
from facebatch.engines.gallery.defaults import MANIFEST, RECALL_QUERIES, TUNED_PARAMETER
from facebatch.engines.gallery.faiss_bench import synthetic_gallery
from facebatch.engines.gallery.faiss_index import IndexChoice, build_index, set_search_parameters
from facebatch.engines.gallery.manifest import read_manifest

pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")


@pytest.fixture(scope="module")
def gallery() -> tuple[np.ndarray, np.ndarray]:
    """4,000 × 64-d: ids as a gallery's (global row numbers, not positions: every third row is dead)."""
    vectors, _ = synthetic_gallery(4000, 64, 1, seed=3)
    return np.arange(len(vectors), dtype=np.int64) * 3 + 7, vectors


@pytest.mark.parametrize(("kind", "parameters"), [("ivf", {}), ("hnsw", {"m": 4})])
def test_the_tuned_parameter_is_the_smallest_reaching_the_target(gallery, kind: str, parameters: dict) -> None:
    """hnsw with m 4: at its default 32 this gallery is found at efSearch 10 already (recall@1 1.000);
    with 4 links a node, recall@1 on held-out faces climbs 0.82 (ef 10), 0.94 (20), 0.98 (32): tuned to 25."""
    ids, vectors = gallery
    built = recall.build_measured(IndexChoice(kind, parameters, recall=0.95), ids, vectors, threads=1)
    name = TUNED_PARAMETER[kind]
    value = built.values[name]
    assert built.kind == kind and built.reached and built.measured["tuned"] == name
    assert built.measured["queries"] == RECALL_QUERIES
    assert built.measured["at_1"] - built.measured["standard_error"] >= 0.95
    assert built.index.ntotal == len(ids)  # the held-out faces joined it once measured
    # the same queries (seeded), on the index built again without them: measured again, and one step lower
    held = recall.held_out(ids, vectors)
    assert held.left_out.sum() == RECALL_QUERIES
    again, _ = build_index(IndexChoice(kind, {**parameters, name: value}), ids, vectors, 1, later=held.left_out)
    assert again.ntotal == len(ids) - RECALL_QUERIES
    assert recall.measure(again, held).at_1 == pytest.approx(built.measured["at_1"], abs=1e-9)
    lowest = recall.tuning_range(kind, built.values, len(vectors))[0]
    assert value > lowest, f"{kind} reached 0.95 at its lowest {name}: the test gallery is too easy"
    set_search_parameters(again, kind, {**built.values, name: value - 1})
    assert not recall.measure(again, held).reaches(0.95)
    # searched for while inside the index, a face is found with itself: what holding it out avoids
    assert recall.measure(built.index, held).at_1 > built.measured["at_1"]
    print(f"{kind}: {name}={value}, recall@1 {built.measured['at_1']}, recall@10 {built.measured['at_10']}")


def test_a_target_out_of_reach_is_refused_with_the_best_recall_reached(gallery) -> None:
    """IVF-PQ ranks by compressed codes: ten near-equal photos of one person reorder, so recall@1 1 is out of
    reach even probing every list (measured 0.40 here)."""
    ids, vectors = gallery
    with pytest.raises(SpecError) as refused:
        recall.build_measured(IndexChoice("ivfpq", recall=1.0), ids, vectors, threads=1)
    message = str(refused.value)
    assert refused.value.field == "recall" and "\n" not in message
    assert message.startswith("recall 1 is out of reach on this gallery's held-out queries: ivfpq reaches recall@1 0.")
    assert re.search(r"ivfpq reaches recall@1 0\.\d{3} at best \(nprobe=\d+, recall@10 0\.\d{3}\)", message)
    assert "The index was not written" in message


def test_a_pinned_search_parameter_is_measured_not_tuned(gallery, caplog) -> None:
    ids, vectors = gallery
    built = recall.build_measured(IndexChoice("ivf", {"nprobe": 1}, recall=0.99), ids, vectors, threads=1)
    assert built.values["nprobe"] == 1 and built.measured["tuned"] is None and built.measured["at_1"] < 0.99
    assert "leave nprobe unset to tune it" in caplog.text


def test_reaching_the_target_leaves_a_margin_of_one_standard_error() -> None:
    """0.990 measured on 1,000 queries (standard error 0.0031) may be 0.984 on fresh photos: not reached."""
    assert not recall.Recall(0.990, 1.0, 0.1, queries=1000).reaches(0.99)
    assert recall.Recall(0.995, 1.0, 0.1, queries=1000).reaches(0.99)  # 0.995 - 0.0022
    assert recall.Recall(1.0, 1.0, 0.1, queries=10).reaches(0.99)  # none missed: no spread to allow for
    assert not recall.Recall(0.99, 1.0, 0.1, queries=100).reaches(0.985)  # 0.99 - 0.0099


def test_auto_takes_flat_for_a_small_gallery_and_ivf_when_it_is_fast_enough(gallery, monkeypatch) -> None:
    """ivf answers this gallery in well under AUTO_FAST_ENOUGH_MS: neither ivfpq_refine nor hnsw is built."""
    ids, vectors = gallery
    small = recall.build_measured(IndexChoice("auto"), ids, vectors, threads=1)
    assert small.kind == "flat" and small.measured == {"exact": True, "at_1": 1.0, "at_10": 1.0}
    monkeypatch.setattr(recall, "AUTO_FLAT_MAX_VALUES", vectors.size - 1)  # the same gallery, one value too big
    quick = recall.build_measured(IndexChoice("auto", recall=0.95), ids, vectors, threads=1)
    assert quick.kind == "ivf" and [c["type"] for c in quick.measured["auto"]] == ["ivf"]
    assert quick.measured["latency_p50_ms"] <= recall.AUTO_FAST_ENOUGH_MS


def test_auto_builds_the_others_when_ivf_is_slow_and_keeps_the_fastest(gallery, monkeypatch) -> None:
    ids, vectors = gallery
    monkeypatch.setattr(recall, "AUTO_FLAT_MAX_VALUES", vectors.size - 1)
    monkeypatch.setattr(recall, "AUTO_FAST_ENOUGH_MS", 0.0)  # no index is fast enough: all three are built
    large = recall.build_measured(IndexChoice("auto", recall=0.95), ids, vectors, threads=1)
    considered = large.measured["auto"]
    assert [c["type"] for c in considered] == ["ivf", "ivfpq_refine", "hnsw"]
    assert all(c["at_1"] - c["standard_error"] >= 0.95 for c in considered)
    fastest = min(considered, key=lambda c: c["latency_p50_ms"])
    assert large.kind == fastest["type"] and large.measured["latency_p50_ms"] == fastest["latency_p50_ms"]


def test_auto_takes_no_parameters_and_recall_is_a_fraction() -> None:
    with pytest.raises(SpecError, match="index auto has no parameter nprobe .*name the index kind to set them"):
        IndexChoice("auto", {"nprobe": 4})
    for bad in (1.5, -0.1):
        with pytest.raises(SpecError, match=f"recall must be a fraction from 0 to 1 .*got {bad}") as refused:
            IndexChoice("ivf", recall=bad)
        assert refused.value.field == "recall"


def test_a_manifest_with_a_malformed_recall_record_is_corrupt(fixture_gallery, tmp_path) -> None:
    import shutil

    from facebatch.engines.gallery.errors import GalleryError

    gallery = tmp_path / "gallery"
    shutil.copytree(fixture_gallery, gallery)
    data = json.loads((gallery / MANIFEST).read_text())
    assert data["index"]["recall"] == {"exact": True, "at_1": 1.0, "at_10": 1.0} and data["index"]["asked"] == "auto"
    data["index"]["recall"] = {"at_1": 7}
    (gallery / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(GalleryError, match="corrupt .*index recall at_1 is not a fraction"):
        read_manifest(gallery)


def test_an_index_out_of_reach_is_refused_before_it_is_written(
    fixture_gallery, detector_file, embedder_file, tmp_path
) -> None:
    """On the real fixture gallery (188 faces): ivfpq at recall 1 is refused; the index and the manifest are the
    ones before (search reads them as before), and the shards are kept. Best recall@1 measured: 0.723."""
    import shutil

    from facebatch.engines.gallery.index_job import index_photos
    from facebatch.engines.gallery.search import GallerySearch

    from .conftest import request

    gallery = tmp_path / "gallery"
    shutil.copytree(fixture_gallery, gallery)
    before = {name: (gallery / name).read_bytes() for name in (MANIFEST, "index.faiss")}
    with pytest.raises(SpecError, match=r"^recall 1 is out of reach .*ivfpq reaches recall@1 0\.\d{3} at best") as no:
        index_photos(request([], gallery, detector_file, embedder_file, index=IndexChoice("ivfpq", recall=1.0)))
    assert no.value.field == "recall"
    print(no.value)
    assert {name: (gallery / name).read_bytes() for name in before} == before
    assert GallerySearch(gallery).index.ntotal == 188
