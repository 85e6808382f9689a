"""`facebatch triton --force` on a repository someone else wrote (issue 34, item 3): the names its
.facebatch-triton.json lists are only ever facebatch's own (`<model>/config.pbtxt`,
`<model>/1/model.*`, `README.md`), never reached through a symlink, and a listed file is removed
only while it still has the sha256 facebatch recorded when it wrote it. Anything else is refused by
name, exit 2, and nothing is removed: a canary file outside the repository keeps its sha256, and so
does every file inside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.environment import file_sha256
from facebatch.core.errors import FacebatchError, OutputError
from facebatch.core.trusted_paths import UntrustedNameError
from facebatch.engines.triton.defaults import MANIFEST
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from tests.data.folders import snapshot


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file of the user's outside the repository; every case checks its sha256 afterwards."""
    path = tmp_path / "canary"
    path.write_text("the user's own file\n")
    return path


@pytest.fixture
def repository(small_detector: Path, tmp_path: Path) -> Path:
    out = tmp_path / "repo"
    triton_repository_from_artifacts([small_detector], out, RepositoryOptions(device="cpu", max_batch=8))
    return out


def rewrite_manifest(out: Path, **changes) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    manifest.update(changes)
    (out / MANIFEST).write_text(json.dumps(manifest))


def listed(out: Path) -> list[str]:
    return json.loads((out / MANIFEST).read_text())["files"]


def force(small_detector: Path, out: Path, **options) -> None:
    options = {"device": "cpu", "max_batch": 8} | options
    triton_repository_from_artifacts([small_detector], out, RepositoryOptions(force=True, **options))


def test_the_manifest_records_the_sha256_of_every_file_it_lists(repository: Path):
    manifest = json.loads((repository / MANIFEST).read_text())
    assert sorted(manifest["sha256"]) == sorted(manifest["files"])
    assert all(file_sha256(repository / rel) == sha for rel, sha in manifest["sha256"].items())


@pytest.mark.parametrize("hostile", ["../canary", "{canary}", "README.md/../../canary", "notes.txt", "m/2/model.onnx"])
def test_a_name_facebatch_does_not_write_is_refused_and_nothing_is_removed(
    small_detector: Path, repository: Path, canary: Path, hostile: str
):
    (repository / "notes.txt").write_text("the user's notes\n")
    name = hostile.format(canary=canary)
    rewrite_manifest(repository, files=[*listed(repository), name])
    before, canary_sha = snapshot(repository), file_sha256(canary)
    with pytest.raises(UntrustedNameError, match="refused, nothing touched") as refused:
        force(small_detector, repository, max_batch=4)
    assert repr(name) in str(refused.value) and refused.value.exit_code == 2
    assert canary.is_file() and file_sha256(canary) == canary_sha
    assert snapshot(repository) == before


def test_the_command_line_refuses_it_in_one_line_with_exit_2(
    small_detector: Path, repository: Path, canary: Path, capsys
):
    rewrite_manifest(repository, files=[*listed(repository), "../canary"])
    before, canary_sha = snapshot(repository), file_sha256(canary)
    code = main(["triton", str(small_detector), "--out", str(repository), "--device", "cpu", "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("facebatch: error: ") and "'../canary'" in err[0]
    assert file_sha256(canary) == canary_sha and snapshot(repository) == before


def test_a_symlinked_model_folder_is_refused_and_its_target_kept(
    small_detector: Path, repository: Path, tmp_path: Path
):
    """The listed <model>/config.pbtxt and <model>/1/model.onnx reached through a link to the user's folder."""
    model = repository / small_detector.stem
    victim = tmp_path / "victim"
    model.rename(victim)  # the user's folder now holds files named like ours
    model.symlink_to(victim, target_is_directory=True)
    before, inside = snapshot(victim), snapshot(repository)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        force(small_detector, repository)
    assert snapshot(victim) == before and snapshot(repository) == inside


def test_a_symlink_where_a_new_model_would_go_is_refused(small_detector: Path, repository: Path, tmp_path: Path):
    """A link not in the manifest at all, at the folder a model is written into: nothing is written through it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    rewrite_manifest(repository, files=["README.md"], sha256={"README.md": file_sha256(repository / "README.md")})
    model = repository / small_detector.stem
    for path in sorted(model.rglob("*"), key=lambda p: -len(p.parts)):
        path.unlink() if path.is_file() else path.rmdir()
    model.rmdir()
    model.symlink_to(victim, target_is_directory=True)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        force(small_detector, repository)
    assert list(victim.iterdir()) == []


def test_an_out_folder_that_is_a_symlink_is_refused(small_detector: Path, repository: Path, tmp_path: Path):
    link = tmp_path / "link"
    link.symlink_to(repository, target_is_directory=True)
    before = snapshot(repository)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        force(small_detector, link)
    assert snapshot(repository) == before


def test_a_file_changed_since_facebatch_wrote_it_is_refused_and_kept(
    small_detector: Path, repository: Path, canary: Path
):
    config = repository / small_detector.stem / "config.pbtxt"
    config.write_text(config.read_text() + "# tuned by hand\n")
    before = snapshot(repository)
    with pytest.raises(OutputError, match="changed since facebatch wrote it") as refused:
        force(small_detector, repository, max_batch=4)
    assert f"{small_detector.stem}/config.pbtxt" in str(refused.value) and refused.value.exit_code == 2
    assert snapshot(repository) == before and config.read_text().endswith("# tuned by hand\n")


def test_a_listed_file_replaced_by_a_folder_or_a_link_is_refused(small_detector: Path, repository: Path, canary: Path):
    readme = repository / "README.md"
    readme.unlink()
    readme.symlink_to(canary)
    canary_sha = file_sha256(canary)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        force(small_detector, repository)
    assert readme.is_symlink() and file_sha256(canary) == canary_sha


def test_a_run_that_stopped_before_recording_hashes_is_replaced_only_where_identical(
    small_detector: Path, repository: Path
):
    """The list is written before the files, the hashes after them: files of a run that stopped half-way (or of
    an older facebatch that recorded none) may be replaced only by the very same bytes."""
    manifest = json.loads((repository / MANIFEST).read_text())
    del manifest["sha256"]
    manifest["format"] = "facebatch-triton/1"
    (repository / MANIFEST).write_text(json.dumps(manifest))
    before = snapshot(repository)
    with pytest.raises(OutputError, match="no sha256 recorded") as refused:
        force(small_detector, repository, max_batch=4)  # another config.pbtxt: not the bytes on disk
    assert f"{small_detector.stem}/config.pbtxt" in str(refused.value)
    assert snapshot(repository) == before
    force(small_detector, repository)  # the same command again: the same bytes, replaced
    assert json.loads((repository / MANIFEST).read_text())["sha256"].keys() == set(manifest["files"])


def test_force_still_replaces_a_repository_of_ours_and_removes_only_its_emptied_folders(
    small_detector: Path, batch_embedder: Path, repository: Path
):
    triton_repository_from_artifacts(
        [small_detector, batch_embedder], repository, RepositoryOptions(force=True, device="cpu")
    )
    (repository / batch_embedder.stem / "1" / "keep.txt").write_text("the user's\n")
    force(small_detector, repository)
    assert not (repository / batch_embedder.stem / "config.pbtxt").exists()
    assert (repository / batch_embedder.stem / "1" / "keep.txt").is_file()  # its folder held the user's file: kept
    assert sorted(p.name for p in repository.iterdir()) == sorted(
        [MANIFEST, "README.md", small_detector.stem, batch_embedder.stem]
    )
    triton_repository_from_artifacts(
        [small_detector, batch_embedder], repository / "fresh", RepositoryOptions(device="cpu")
    )
    force(small_detector, repository / "fresh")
    assert sorted(p.name for p in (repository / "fresh").iterdir()) == sorted(
        [MANIFEST, "README.md", small_detector.stem]
    )  # the embedder's emptied folders went with its files


def test_an_unreadable_manifest_is_refused(small_detector: Path, repository: Path):
    for broken in ("not json", json.dumps({"format": "someone-else/1", "files": []}), json.dumps({"files": "x"})):
        (repository / MANIFEST).write_text(broken)
        with pytest.raises(FacebatchError, match="cannot tell which files it wrote"):
            force(small_detector, repository)


def test_an_artifact_inside_the_repository_is_refused_before_force_removes_it(
    repository: Path, small_detector: Path, tmp_path: Path
):
    """Serving the copy a repository holds, with --force into that repository: before, --force unlinked the
    model it was about to copy (the only copy), then died with a traceback."""
    inside = next(repository.glob("*/1/model.onnx"))
    before = snapshot(repository)
    with pytest.raises(OutputError, match="holds the artifact .*copy the artifact out of the repository first"):
        triton_repository_from_artifacts([inside], repository, RepositoryOptions(device="cpu", max_batch=8, force=True))
    assert snapshot(repository) == before


def test_a_manifest_nested_past_pythons_stack_is_unreadable_in_one_line(repository: Path, small_detector: Path):
    (repository / MANIFEST).write_text("[" * 200_000)
    with pytest.raises(OutputError, match="unreadable"):
        triton_repository_from_artifacts(
            [small_detector], repository, RepositoryOptions(device="cpu", max_batch=8, force=True)
        )
