"""One rule for which photos a command takes (engines/pipeline/photo_files.py): folders walked with their
subfolders, hidden entries and links inside a folder skipped and said, and a refusal that says where it looked
and what it takes."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.photo_files import collect_images, image_files, proof_photos


@pytest.fixture()
def nest(photos: list[Path], tmp_path: Path) -> Path:
    """nest/a/b/<photo>, nest/top.jpg, nest/a/z.png: photos at three depths (copies: links are not followed)."""
    root = tmp_path / "nest"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(photos[0], root / "a" / "b" / photos[0].name)
    shutil.copy(photos[1], root / "top.jpg")
    shutil.copy(photos[2], root / "a" / "z.png")
    return root


def test_every_resolver_walks_subfolders_in_one_order(nest: Path, photos: list[Path]) -> None:
    expected = [
        nest / "top.jpg",
        nest / "a" / "z.png",
        nest / "a" / "b" / photos[0].name,
    ]  # a folder's, then its subfolders'
    assert image_files(nest) == expected
    assert collect_images([nest]) == expected
    assert proof_photos([nest]) == expected
    assert collect_images([nest / "a", nest]) == [*expected[1:], expected[0]]  # each once, in the arguments' order


def test_hidden_entries_and_links_are_skipped_and_said(nest: Path, photos: list[Path], caplog) -> None:
    (nest / ".thumbnails").mkdir()
    shutil.copy(photos[3], nest / ".thumbnails" / "t.jpg")
    shutil.copy(photos[3], nest / "._top.jpg")  # macOS's AppleDouble file: not a photo, named like one
    (nest / "README.txt").write_text("not a photo, not said")
    (nest / "linked.jpg").symlink_to(photos[4])
    (nest / "elsewhere").symlink_to(photos[0].parent, target_is_directory=True)
    os.mkfifo(nest / "a" / "pipe.jpg")  # a reader would block on it
    with caplog.at_level(logging.INFO):
        found = collect_images([nest])
    assert [p.name for p in found] == ["top.jpg", "z.png", photos[0].name]
    said = [r.getMessage() for r in caplog.records]
    hidden = next(m for m in said if m.startswith("skipped 2 hidden"))
    assert "skipped 2 hidden entries" in hidden and "'._top.jpg'" in hidden and "'.thumbnails/'" in hidden
    links = next(m for m in said if m.startswith("skipped 2 links"))
    assert "skipped 2 links" in links and "'elsewhere/'" in links and "'linked.jpg'" in links
    assert "name a linked photo itself" in links
    assert any("skipped 1 special file" in m and "'a/pipe.jpg'" in m for m in said)
    assert not any("README" in m for m in said)
    # a photo named outright is taken as named, a link included
    assert collect_images([nest / "linked.jpg"]) == [nest / "linked.jpg"]


def test_a_folder_without_photos_is_refused_saying_where_it_looked(tmp_path: Path) -> None:
    empty = tmp_path / "nest"
    (empty / "a" / "b").mkdir(parents=True)
    (empty / "a" / "b" / "notes.txt").write_text("no photo")
    suffixes = ".jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff"
    with pytest.raises(SpecError, match=f"^no photos \\({suffixes}\\) in {empty} or its subfolders; pass photos"):
        collect_images([empty])
    with pytest.raises(SpecError, match=f"^images: no photos \\({suffixes}\\) in {empty} or its subfolders") as refused:
        proof_photos([empty], field="images")
    assert refused.value.field == "images"
    with pytest.raises(SpecError, match=f"in {empty}, {tmp_path / 'x'} or their subfolders"):
        (tmp_path / "x").mkdir()
        collect_images([empty, tmp_path / "x"])
