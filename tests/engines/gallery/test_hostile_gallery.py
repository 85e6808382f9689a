"""Galleries made elsewhere (issue 34): a manifest, a shards folder or an ``--out`` that is not what
facebatch wrote is refused by name with nothing touched; clean-ups remove only facebatch's own
names; a damaged shard is quarantined, never deleted, and an I/O error stops the run; a crafted
index cannot make the reader allocate more than its file holds; galleries are private to their
owner. A canary file outside the gallery keeps its sha256 through every case."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from facebatch.core.errors import FacebatchError
from facebatch.core.trusted_paths import UntrustedNameError
from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.gallery.index_job import index_photos
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.gallery.store import Gallery
from tests.data.folders import snapshot

from .conftest import request


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Canary:
    """A file of the user's outside the gallery: every case ends with it exactly as it was."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        self.path = folder / "canary.txt"
        self.path.write_bytes(os.urandom(256))
        self.digest = sha256(self.path)

    def intact(self) -> None:
        assert self.path.is_file() and not self.path.is_symlink(), f"{self.path} was removed"
        assert sha256(self.path) == self.digest, f"{self.path} was changed"


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return Canary(tmp_path / "outside")


def copy_gallery(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def set_shard_name(gallery: Path, name: str) -> None:
    manifest = json.loads((gallery / MANIFEST).read_text())
    manifest["shards"][0]["file"] = name
    (gallery / MANIFEST).write_text(json.dumps(manifest))


# -- names from the manifest --------------------------------------------------------------------------
@pytest.mark.parametrize("attack", ["absolute", "dot-dot", "symlink", "not-our-name", "arabic-digits"])
def test_a_manifest_naming_a_file_outside_its_shards_is_refused_and_nothing_is_touched(
    attack: str, enrolled: Path, detector_file, embedder_file, tmp_path: Path, canary: Canary
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    if attack == "absolute":
        set_shard_name(gallery, str(canary.path))
    elif attack == "dot-dot":
        set_shard_name(gallery, "../../outside/canary.txt")  # gallery/shards/../../ is tmp_path
    elif attack == "symlink":
        (gallery / "shards" / "shard-00000.parquet").unlink()
        (gallery / "shards" / "shard-00000.parquet").symlink_to(canary.path)
    elif attack == "arabic-digits":  # \d would take them: never a name facebatch writes
        (gallery / "shards" / "shard-٠٠٠٠٠.parquet").write_text("the user's file")
        set_shard_name(gallery, "shard-٠٠٠٠٠.parquet")
    else:
        (gallery / "shards" / "notes.txt").write_text("the user's notes")
        set_shard_name(gallery, "notes.txt")
    before = snapshot(gallery)

    with pytest.raises(UntrustedNameError) as refused:
        index_photos(
            request([], gallery, detector_file, embedder_file, faces="best")
        )  # rebuild the index: reads every shard
    assert refused.value.exit_code == 2
    print(f"{attack}: {refused.value}")
    with pytest.raises(UntrustedNameError):
        GallerySearch(gallery)
    canary.intact()
    assert snapshot(gallery) == before


def test_a_symlinked_shards_folder_is_refused_and_its_target_untouched(
    enrolled: Path, detector_file, embedder_file, tmp_path: Path, canary: Canary
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    target = canary.path.parent
    for shard in (gallery / "shards").iterdir():
        shutil.copy(shard, target / shard.name)
    shutil.rmtree(gallery / "shards")
    (gallery / "shards").symlink_to(target)  # the target also holds the canary: "uncommitted leftovers" before
    before = snapshot(target)

    with pytest.raises(UntrustedNameError, match="symlink") as refused:
        index_photos(request([], gallery, detector_file, embedder_file, faces="best"))
    print(refused.value)
    canary.intact()
    assert snapshot(target) == before


def test_an_out_folder_of_foreign_files_is_refused(
    people: Path, detector_file, embedder_file, tmp_path: Path, canary: Canary
) -> None:
    out = tmp_path / "mine"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "thesis.txt").write_text("a user's work, in a folder that happens to be called shards")
    before = snapshot(out)
    with pytest.raises(FacebatchError, match="not a gallery") as refused:
        index_photos(request([people], out, detector_file, embedder_file, faces="best"))
    assert refused.value.exit_code == 2
    print(refused.value)
    assert snapshot(out) == before
    canary.intact()


def test_a_killed_first_run_of_ours_is_taken_up_and_its_leftovers_removed(
    enrolled: Path, people: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    out = tmp_path / "gallery"
    (out / "shards").mkdir(parents=True)
    shutil.copy(enrolled / "shards" / "shard-00000.parquet", out / "shards" / "shard-00000.parquet")
    (out / "shards" / ".shard-00001.parquet.ab12cd_3.tmp").write_bytes(b"half")
    (out / ".manifest.json.x9y8z7w6.tmp").write_text("{")
    (out / ".lock").touch()
    summary = index_photos(request([people], out, detector_file, embedder_file, faces="best"))
    assert (summary.photos_run, summary.gallery_faces) == (3, 3)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.parquet"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_clean_ups_remove_only_facebatchs_own_names_and_say_what_they_left(
    enrolled: Path, detector_file, embedder_file, tmp_path: Path, canary: Canary, caplog
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    foreign = [
        gallery / "shards" / "notes.txt",
        gallery / "shards" / "shard-7.parquet",  # near our pattern, not it
        gallery / ".manifest.json.my-notes.tmp",  # not the atomic writer's random part
        gallery / ".ray-staging-notes" / "plan.txt",  # no pid: not a staging folder of ours
    ]
    for path in foreign:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the user's")
    (gallery / "shards" / "shard-00009.parquet").symlink_to(canary.path)  # our name, but a link: not ours
    (gallery / ".ray-staging-7-abcdefgh").symlink_to(canary.path.parent)  # our name, a link: never followed
    ours = [
        gallery / "shards" / "shard-00001.parquet",
        gallery / "shards" / ".shard-00001.parquet.k2j4h6g8.tmp",
        gallery / ".index.faiss.a1b2c3d4.tmp",
        gallery / ".ray-staging-12345-x1y2z3w4" / "part-0.parquet",
    ]
    for path in ours:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"a killed run's")
    with caplog.at_level(logging.WARNING, logger="facebatch"):
        index_photos(request([], gallery, detector_file, embedder_file, faces="best"))
    assert all(p.is_file() for p in foreign), [p for p in foreign if not p.exists()]
    assert (gallery / "shards" / "shard-00009.parquet").is_symlink()
    assert (gallery / ".ray-staging-7-abcdefgh").is_symlink()
    assert not any(p.exists() for p in ours) and not (gallery / ".ray-staging-12345-x1y2z3w4").exists()
    left = [r.getMessage() for r in caplog.records if "facebatch did not write" in r.getMessage()]
    assert len(left) == 1 and "notes.txt" in left[0], [r.getMessage() for r in caplog.records]
    print(left[0])
    canary.intact()


def test_a_shard_written_but_changed_before_its_commit_is_not_removed(enrolled: Path, tmp_path: Path, monkeypatch):
    gallery = Gallery.open(copy_gallery(enrolled, tmp_path / "gallery"))
    table = gallery.read_shard(0)
    written: list[Path] = []

    def stopped() -> None:  # another file takes the name, then the run stops before the manifest names it
        written[0].write_text("someone else's file, now under the name facebatch wrote")
        raise KeyboardInterrupt

    monkeypatch.setattr(gallery, "save", stopped)
    with pytest.raises(KeyboardInterrupt), gallery.writing():
        written.append(gallery.write_shard(table))
        gallery.commit(written, {})
    assert written[0].read_text().startswith("someone else's")


def test_a_manifest_written_before_shard_sha256s_still_reads_and_gets_them_recorded(
    enrolled: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    manifest = json.loads((gallery / MANIFEST).read_text())
    recorded = [entry.pop("sha256") for entry in manifest["shards"]]
    (gallery / MANIFEST).write_text(json.dumps(manifest))  # as facebatch wrote it before issue 34
    assert GallerySearch(gallery).index.ntotal == 3
    index_photos(request([], gallery, detector_file, embedder_file, faces="best"))
    again = json.loads((gallery / MANIFEST).read_text())
    assert (
        [entry["sha256"] for entry in again["shards"]]
        == recorded
        == [sha256(gallery / "shards" / "shard-00000.parquet")]
    )


# -- damage and I/O errors ----------------------------------------------------------------------------
def test_a_corrupt_shard_is_quarantined_not_deleted_and_its_photos_indexed_again(
    fixture_gallery: Path, images_dir: Path, detector_file, embedder_file, tmp_path: Path, canary: Canary, caplog
) -> None:
    gallery = copy_gallery(fixture_gallery, tmp_path / "gallery")
    shard = gallery / "shards" / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    damaged = sha256(shard)
    with caplog.at_level(logging.WARNING, logger="facebatch"):
        repaired = index_photos(request([images_dir], gallery, detector_file, embedder_file, photos_per_shard=4))
    assert (repaired.photos_run, repaired.gallery_faces) == (4, 188)  # the quarantined shard's photos, again
    (kept,) = (gallery / "quarantine").iterdir()
    assert kept.name.endswith("-shard-00001.parquet") and sha256(kept) == damaged
    assert stat.S_IMODE((gallery / "quarantine").stat().st_mode) == 0o700
    assert "shard-00001.parquet" not in [s.name for s in Gallery.open(gallery).manifest.shards]
    (line,) = [r.getMessage() for r in caplog.records if "quarantine" in r.getMessage()]
    print(line)
    assert GallerySearch(gallery).index.ntotal == 188
    canary.intact()


def cli_index(gallery: Path, real_detector: Path, batch_embedder: Path) -> list[str]:
    return [sys.executable, "-m", "facebatch", "index", "--out", str(gallery), "--faces", "best",
            "--detector", str(real_detector), "--embedder", str(batch_embedder)]  # fmt: skip


def without_root_privileges(command: list[str]) -> list[str]:
    """``command`` as a process that file permissions apply to: as is for a user; as root (which
    reads a chmod 000 file), with the capabilities that bypass permissions dropped (setpriv)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: chmod 000 denies nothing here, so no real EACCES")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", *command]


def test_a_shard_that_cannot_be_read_stops_the_run_and_nothing_is_removed(
    enrolled: Path, real_detector: Path, batch_embedder: Path, tmp_path: Path, canary: Canary
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    shard = gallery / "shards" / "shard-00000.parquet"
    before = snapshot(gallery)
    shard.chmod(0)
    try:
        done = subprocess.run(
            without_root_privileges(cli_index(gallery, real_detector, batch_embedder)),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        shard.chmod(0o600)
    print(done.stderr.strip().splitlines()[-1:])
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("facebatch: error:")]
    assert "shard-00000.parquet" in line and "Permission denied" in line and "Traceback" not in done.stderr
    assert snapshot(gallery) == before
    assert not (gallery / "quarantine").exists()
    canary.intact()


def test_a_missing_shards_folder_stops_the_run_and_the_manifest_stays(
    enrolled: Path, detector_file, embedder_file, tmp_path: Path
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    (gallery / "shards").rename(tmp_path / "shards-elsewhere")  # an unmounted share, a half-copied gallery
    manifest = (gallery / MANIFEST).read_bytes()
    with pytest.raises(FacebatchError, match="shards") as stopped:
        index_photos(request([], gallery, detector_file, embedder_file, faces="best"))
    print(stopped.value)
    assert (gallery / MANIFEST).read_bytes() == manifest
    assert not (gallery / "shards").exists()


# -- the FAISS index ----------------------------------------------------------------------------------
def patch_flat_codes_length(path: Path, elements: int) -> None:
    """Set the stored length of the code vector of an IndexIDMap2 over an IndexFlatIP (two 37-byte
    headers: fourcc, d, ntotal, two dummies, is_trained, metric; then the length as int64) to
    ``elements`` floats; the file's size stays what the manifest records."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"IxM2" and data[37:41] == b"IxFI", data[:48]
    dimension, ntotal = struct.unpack_from("<iq", data, 41)
    assert struct.unpack_from("<q", data, 74)[0] == ntotal * dimension
    struct.pack_into("<q", data, 74, elements)
    path.write_bytes(bytes(data))


OPEN_GALLERY = """
import sys
from pathlib import Path

from facebatch.engines.gallery.search import GallerySearch
from facebatch.core.errors import FacebatchError

try:
    GallerySearch(sys.argv[1])  # reads the manifest and the index, as search does first
except FacebatchError as exc:
    print(f"facebatch: error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
finally:  # this process's own peak (VmHWM): ru_maxrss would start from the forking parent's
    status = Path("/proc/self/status").read_text().splitlines()
    print(int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) // 1024)
"""


def open_in_a_process(gallery: Path) -> tuple[int, str, int]:
    """Open ``gallery`` for search in a fresh process: its exit status, its stderr, its peak resident MiB."""
    done = subprocess.run(
        [sys.executable, "-c", OPEN_GALLERY, str(gallery)], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stderr, int(done.stdout.split()[-1])


@pytest.mark.parametrize("bomb", ["4 GiB vector", "512 GiB vector", "grown file"])
def test_a_crafted_index_is_refused_without_allocating_what_it_claims(
    bomb: str, enrolled: Path, tmp_path: Path
) -> None:
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    status, err, normal = open_in_a_process(gallery)
    assert status == 0, err
    index = gallery / "index.faiss"
    if bomb == "grown file":
        index.write_bytes(index.read_bytes() + bytes(4096))
    else:
        patch_flat_codes_length(index, (1 << 30) if bomb.startswith("4 GiB") else (1 << 37))  # floats
    status, err, peak = open_in_a_process(gallery)
    print(f"{bomb}: peak RSS {peak:.0f} MiB (the intact index: {normal:.0f} MiB); {err.strip()}")
    assert status == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert "index.faiss" in line and "rebuild it by indexing into" in line, line
    assert peak < 1.5 * normal


# -- permissions --------------------------------------------------------------------------------------
def test_a_new_gallery_is_private_to_its_owner(people: Path, detector_file, embedder_file, tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    mask = os.umask(0o022)  # the usual one: world-readable files unless facebatch says otherwise
    try:
        index_photos(request([people], out, detector_file, embedder_file, faces="best"))
    finally:
        os.umask(mask)
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    print(modes)
    assert modes.pop(".") == 0o700 and modes.pop("shards") == 0o700
    assert set(modes) >= {"manifest.json", "index.faiss", "shards/shard-00000.parquet"}
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_a_manifest_nested_past_pythons_stack_is_one_line(enrolled: Path, tmp_path: Path) -> None:
    """'[' * 200000 as manifest.json: a RecursionError traceback before, a 'corrupt' line now."""
    gallery = copy_gallery(enrolled, tmp_path / "gallery")
    (gallery / MANIFEST).write_text("[" * 200_000)
    with pytest.raises(FacebatchError, match="is corrupt \\(RecursionError"):
        GallerySearch(gallery)


def test_a_link_to_nothing_among_the_photos_is_skipped_by_name(
    people: Path, detector_file, embedder_file, tmp_path: Path, caplog
) -> None:
    """A dangling symlink in an archive stopped index with a FileNotFoundError traceback; links inside a photo
    folder are now never followed (engines/pipeline/photo_files.py), and the skip is said by name."""
    photos = tmp_path / "photos"
    shutil.copytree(people, photos)
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with caplog.at_level(logging.WARNING, logger="facebatch"):
        summary = index_photos(request([photos], tmp_path / "gallery", detector_file, embedder_file, faces="best"))
    assert summary.photos_run == summary.photos_named > 0
    assert any(
        "gone.jpg" in r.getMessage() and "links inside a photo folder are not followed" in r.getMessage()
        for r in caplog.records
    )
