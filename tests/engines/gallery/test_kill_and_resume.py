"""``facebatch index`` SIGKILLed at several moments (before its first commit, between shard commits, while
the index is written): every time, what the gallery names reads right — each shard whole, the index
either current or refused by search as behind — and the next run finishes the job. The result
equals an uninterrupted run's: the same faces, the same embeddings. The run kills itself at the moment
(tests/data/tripwire.py), so each moment is the same on an idle machine and a loaded one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.gallery.store import Gallery
from tests.data import tripwire

# moment → the shards committed by then (2 photos a shard; a photo's progress line comes before its shard's commit)
KILL_AT = {
    "line:… index [1/17]": 0,  # the models open and the gallery locked, nothing committed
    "line:… index [3/17]": 1,
    "line:… index [7/17]": 3,
    "line:✓ index": 9,  # every shard committed, the index not built yet
    "call:faiss:write_index": 9,  # the index being written
}


def command(images: Path, out: Path, detector: Path, embedder: Path) -> list[str]:
    return [sys.executable, "-m", "facebatch", "index", str(images), "--out", str(out), "--photos-per-shard", "2",
            "--detector", str(detector), "--embedder", str(embedder), "--workers", "1"]  # fmt: skip


def shards_committed(out: Path) -> int:
    try:
        return len(json.loads((out / MANIFEST).read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return -1


def faces_of(out: Path) -> dict[tuple[str, int], np.ndarray]:
    gallery = Gallery.open(out)
    states = gallery.photo_states()
    found = {}
    for position, entry in enumerate(gallery.manifest.shards):
        for row in pq.read_table(out / "shards" / entry.name).to_pylist():
            if row["face"] >= 0 and states[row["photo"]].shard == position:
                found[(row["photo"], row["face"])] = np.array(row["embedding"], np.float32)
    return found


def assert_reads_right(out: Path) -> None:
    """Whatever the manifest names is whole; the index is current or refused as behind."""
    if not (out / MANIFEST).exists():
        return  # killed before the first commit: nothing claimed
    gallery = Gallery.open(out)
    for position in range(len(gallery.manifest.shards)):
        gallery.read_shard(position)  # raises on a short or damaged shard
    try:
        searcher = GallerySearch(out)
    except GalleryError as exc:
        assert "index" in str(exc) and "rebuild it by indexing into" in str(exc), exc
        return
    assert searcher.index.ntotal == gallery.manifest.index["rows"]


@pytest.fixture(scope="module")
def uninterrupted(images_dir: Path, real_detector: Path, batch_embedder: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("whole") / "gallery"
    subprocess.run(
        command(images_dir, out, real_detector, batch_embedder), check=True, capture_output=True, timeout=300
    )
    return faces_of(out)


@pytest.mark.parametrize("moment", KILL_AT)
def test_a_killed_run_loses_nothing_committed_and_the_next_one_finishes(
    moment: str, images_dir: Path, real_detector: Path, batch_embedder: Path, uninterrupted: dict, tmp_path: Path
) -> None:
    out = tmp_path / "gallery"
    run = command(images_dir, out, real_detector, batch_embedder)
    killed = subprocess.run(
        tripwire.command(signal.SIGKILL, moment, *run[3:]), capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    committed = max(shards_committed(out), 0)
    assert committed == KILL_AT[moment], f"killed at {moment} with {committed} shards committed"
    assert_reads_right(out)

    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    print(f"killed {moment} ({committed} shards committed); then: {first}")
    assert f"({2 * committed} unchanged)" in first or committed * 2 > 17, first  # committed photos are not run again
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name != ".lock"], "leftovers"
    again = faces_of(out)
    assert set(again) == set(uninterrupted)
    assert min(float(again[k] @ uninterrupted[k]) for k in again) > 0.9999
    assert GallerySearch(out).index.ntotal == len(uninterrupted) == 188


def test_a_writer_stopped_between_a_shards_write_and_its_commit_leaves_no_stray_shard(
    enrolled: Path, tmp_path: Path, monkeypatch
):
    import shutil

    out = tmp_path / "gallery"
    shutil.copytree(enrolled, out)
    gallery = Gallery.open(out)
    committed = sorted(p.name for p in (out / "shards").iterdir())
    table = gallery.read_shard(0)

    def stopped() -> None:  # the signal, as the interrupt handler raises it, before the manifest is saved
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery, "save", stopped)
    with pytest.raises(KeyboardInterrupt), gallery.writing():
        gallery.commit([gallery.write_shard(table)], {})
    assert sorted(p.name for p in (out / "shards").iterdir()) == committed  # the written shard went with it
    assert [s.name for s in Gallery.open(out).manifest.shards] == committed
