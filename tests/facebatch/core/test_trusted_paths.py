"""Names read from folders facebatch does not trust: only its own patterns, inside the folder, no
symlinks; and durable renames."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from facebatch.core.atomic import InputFiles, check_output_file, durable_replace, write_text_atomic
from facebatch.core.errors import OutputError
from facebatch.core.trusted_paths import (
    UntrustedNameError,
    member,
    printable,
    refuse_symlinked_folder,
    walk_files,
)

SHARD = re.compile(r"shards/shard-\d{5}\.parquet")


def test_an_own_name_inside_the_folder_is_accepted(tmp_path: Path):
    (tmp_path / "shards").mkdir()
    assert member(tmp_path, "shards/shard-00001.parquet", SHARD, "m") == tmp_path / "shards/shard-00001.parquet"


@pytest.mark.parametrize(
    "name, says",
    [
        ("/etc/passwd", "absolute path"),
        ("../canary", "leaves its folder"),
        ("shards/../../canary", "leaves its folder"),
        ("shards//shard-00001.parquet", "leaves its folder"),
        ("./shards/shard-00001.parquet", "leaves its folder"),
        ("shards/shard-00001.parquet\n", "control characters"),
        ("shards\\shard-00001.parquet", "control characters"),
        ("shards/shard-00001\u009b2J.parquet", "control characters"),  # CSI as one C1 character
        ("shards/shard-\u202e00001.parquet", "control characters"),  # a bidi override reorders what is shown
        ("shards/notes.txt", "not a name facebatch writes"),
        ("", "not a file name"),
        (7, "not a file name"),
        (None, "not a file name"),
    ],
)
def test_anything_else_is_refused_by_name(tmp_path: Path, name: object, says: str):
    with pytest.raises(UntrustedNameError, match=re.escape(says)) as caught:
        member(tmp_path, name, SHARD, "the gallery's manifest.json")
    assert "the gallery's manifest.json" in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_symlink_on_the_way_is_refused(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "shards").symlink_to(elsewhere)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        member(folder, "shards/shard-00001.parquet", SHARD, "m")
    (folder / "shards").unlink()
    (folder / "shards").mkdir()
    (folder / "shards" / "shard-00001.parquet").symlink_to(elsewhere / "x")
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        member(folder, "shards/shard-00001.parquet", SHARD, "m")
    (tmp_path / "link").symlink_to(folder)
    with pytest.raises(UntrustedNameError, match="is a symlink"):
        refuse_symlinked_folder(tmp_path / "link", "--out")


def test_walk_files_sees_everything_and_follows_no_link(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("x")
    (tmp_path / "top.txt").write_text("y")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret").write_text("z")
    (tmp_path / "a" / "link").symlink_to(outside)
    seen = dict(walk_files(tmp_path))
    assert sorted(seen) == ["a/b/f.txt", "a/link", "top.txt"]
    assert os.path.islink(tmp_path / "a" / "link") and not any("secret" in k for k in seen)


def test_printable_shows_escapes_instead_of_sending_them():
    shown = printable("\x1b[2Jname\n[red]x[/red]")
    assert "\x1b" not in shown and "\n" not in shown and "\\x1b" in shown


def test_durable_replace_and_atomic_writes(tmp_path: Path):
    source = tmp_path / "new"
    source.write_text("data")
    durable_replace(source, tmp_path / "target")
    assert (tmp_path / "target").read_text() == "data" and not source.exists()
    write_text_atomic(tmp_path / "private.json", "{}", mode=0o600)
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_an_output_that_is_an_input_or_a_folder_is_refused(tmp_path: Path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8")
    os.link(photo, tmp_path / "other_name.jpg")
    inputs = InputFiles([photo])
    for target in (photo, tmp_path / "other_name.jpg"):
        with pytest.raises(OutputError, match="never overwrites an input"):
            check_output_file(target, "--json", inputs)
    with pytest.raises(OutputError, match="is an existing folder"):
        check_output_file(tmp_path, "--json")
    assert check_output_file(tmp_path / "new.json", "--json", inputs) == tmp_path / "new.json"


def test_stale_drafts_are_found_by_their_exact_name_never_a_glob(tmp_path: Path):
    """A target named '?.onnx' made the clean-up glob '.?.onnx.draft-*' and remove other targets' folders; a
    user's '<prefix>123-notes' is no draft of ours either."""
    from facebatch.core.leftovers import remove_stale

    dead = 4_000_000  # above pid_max: no such process
    others = [tmp_path / f".a.onnx.draft-{dead}-abcd1234", tmp_path / f".?.onnx.draft-{dead}-notes"]
    ours = tmp_path / f".?.onnx.draft-{dead}-k3j9x_0a"
    for folder in [*others, ours]:
        folder.mkdir()
    assert remove_stale(tmp_path, ".?.onnx.draft-") == [ours]
    assert all(folder.is_dir() for folder in others) and not ours.exists()
