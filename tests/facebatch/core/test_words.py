"""Words for people: counts, shares, and names in the order people count them."""

from __future__ import annotations

from pathlib import Path

from facebatch.core.words import natural_key


def test_names_sort_as_people_count_them():
    names = ["img10.jpg", "img2.jpg", "IMG1.jpg", "img1b.jpg", "a/img3.jpg"]
    assert sorted(names, key=natural_key) == ["a/img3.jpg", "IMG1.jpg", "img1b.jpg", "img2.jpg", "img10.jpg"]
    paths = [Path("b/img10.jpg"), Path("a10/x.jpg"), Path("b/img9.jpg"), Path("a9/x.jpg"), Path("a/img")]
    assert sorted(paths, key=natural_key) == [  # folder by folder: a number never meets a word
        Path("a/img"),
        Path("a9/x.jpg"),
        Path("a10/x.jpg"),
        Path("b/img9.jpg"),
        Path("b/img10.jpg"),
    ]


def test_a_folder_is_walked_in_natural_order(tmp_path: Path):
    """Before: img1, img10, img11, img2 (name order) in every command's list of photos."""
    from facebatch.engines.pipeline.photo_files import walk_photos

    for number in (1, 2, 10, 11):
        (tmp_path / f"img{number}.jpg").write_bytes(b"")
    assert [p.name for p in walk_photos(tmp_path).photos] == ["img1.jpg", "img2.jpg", "img10.jpg", "img11.jpg"]
