"""facebatch index and search from the command line, on the real fixtures: the tour (enrol, then
identify), JSON for programs, an embed .npz as a query, and bad input as one line each with a
non-zero exit, after the rest is done where there is a rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facebatch.cli import main

pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")


@pytest.fixture(scope="module")
def models(real_detector: Path, batch_embedder: Path) -> list[str]:
    return ["--detector", str(real_detector), "--embedder", str(batch_embedder)]


@pytest.fixture(scope="module")
def people(photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("people")
    for subject in ("obama", "biden", "rob_lowe"):
        (root / subject).mkdir()
        photo = next(p for p in photos if p.name.startswith(f"{subject}_1."))
        shutil.copy2(photo, root / subject / photo.name)  # a link inside a photo folder is not followed
    return root


@pytest.fixture(scope="module")
def gallery(people: Path, models: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "gallery"
    assert main(["index", str(people), "--out", str(out), "--faces", "best", *models]) == 0
    return out


def error_lines(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.startswith("facebatch: error:")]


def test_index_then_search_identifies_each_person(gallery: Path, photos: list[Path], models, capsys) -> None:
    capsys.readouterr()
    queries = [next(p for p in photos if p.name == f"{s}_2.jpg") for s in ("obama", "biden", "rob_lowe")]
    assert main(["search", *map(str, queries), "--gallery", str(gallery), "--top-k", "2", "--json", "-"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    report = json.loads(out[out.index("{") :])
    assert [face["answer"] for face in report["faces"]] == ["obama", "biden", "rob_lowe"]
    assert all(len(face["matches"]) == 2 and not face["matches"][1]["match"] for face in report["faces"])
    assert out.startswith("{")  # the JSON alone on standard output; the people's lines went to stderr
    assert "obama_2.jpg face 0 → obama (cosine" in captured.err


def test_a_query_without_a_face_is_named_and_exits_1(gallery: Path, photos: list[Path], capsys) -> None:
    no_face = next(p for p in photos if p.name == "no_face.png")
    obama = next(p for p in photos if p.name == "obama_2.jpg")
    assert main(["search", str(obama), str(no_face), "--gallery", str(gallery)]) == 1
    captured = capsys.readouterr()
    assert "obama_2.jpg face 0 → obama" in captured.out  # the rest is answered
    (line,) = error_lines(captured.err)
    assert "1 query photo with no face: " in line and "no_face.png" in line


def test_an_embed_npz_is_a_query_when_made_with_the_gallery_models(
    gallery: Path, photos: list[Path], models, tmp_path: Path, capsys
) -> None:
    obama = next(p for p in photos if p.name == "obama_2.jpg")
    npz = tmp_path / "obama.npz"
    assert main(["embed", str(obama), "-o", str(npz), *models]) == 0
    capsys.readouterr()
    assert main(["search", str(npz), "--gallery", str(gallery), "--json", "-"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["faces"][0]["answer"] == "obama"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files if k != "embedder_sha256"}
    np.savez(tmp_path / "old.npz", **arrays)
    assert main(["search", str(tmp_path / "old.npz"), "--gallery", str(gallery)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "does not say which embedder made it" in line


def test_unreadable_photos_are_recorded_and_the_rest_indexed(
    photos: list[Path], models, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(next(p for p in photos if p.name == "obama_1.jpg"), folder / "obama_1.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path / "gallery"
    assert main(["index", str(folder), "--out", str(out), *models]) == 1
    captured = capsys.readouterr()
    (line,) = error_lines(captured.err)
    assert "1 of 2 photos could not be read (recorded in" in line and "broken.jpg" in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["photos"] == 1 and manifest["counts"]["faces"] == 1
    assert [Path(f["photo"]).name for f in manifest["failed"]] == ["broken.jpg"]
    assert "1 photo run (1 unchanged)" not in captured.out
    (folder / "broken.jpg").unlink()
    shutil.copy(next(p for p in photos if p.name == "biden_1.jpg"), folder / "broken.jpg")  # mended
    assert main(["index", str(folder), "--out", str(out), *models]) == 0
    assert json.loads((out / "manifest.json").read_text())["failed"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "x.jpg", "--gallery", "{file}"], "is a file"),
        (["search", "x.jpg", "--gallery", "{tmp}"], "is not a gallery (no manifest.json)"),
        (["index", "--out", "{tmp}/none"], "is not a gallery (no manifest.json)"),
        (["index", "{photos}", "--out", "{file}", "{models}"], "is a file; pass a folder as --out"),
        (
            ["index", "{photos}", "--out", "{tmp}/g", "--index", "ivf", "--index-param", "ef_search=3", "{models}"],
            "has no parameter ef_search",
        ),
        (
            ["index", "{photos}", "--out", "{tmp}/g", "--ray", "127.0.0.1:9", "{models}"],
            "no Ray cluster answers at 127.0.0.1:9",
        ),
        (["search", "x.jpg", "--gallery", "{gallery}", "--top-k", "0"], "--top-k must be at least 1"),
        (
            ["index", "{photos}", "--out", "{tmp}/g", "--recall", "1.5", "{models}"],
            "--recall must be a fraction from 0 to 1 (recall@1 against exact search), got 1.5",
        ),
        (
            ["index", "{photos}", "--out", "{tmp}/g", "--index-param", "nprobe=4", "{models}"],
            "index auto has no parameter nprobe (it takes no parameters: name the index kind to set them)",
        ),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    argv, message, gallery: Path, photos: list[Path], models, tmp_path: Path, capsys
) -> None:
    (tmp_path / "file").write_text("x")
    filled = []
    for item in argv:
        if item == "{models}":
            filled += models
            continue
        filled.append(
            item.replace("{file}", str(tmp_path / "file")).replace("{tmp}", str(tmp_path))
            .replace("{photos}", str(photos[0])).replace("{gallery}", str(gallery))
        )  # fmt: skip
    assert main(filled) != 0
    captured = capsys.readouterr()
    (line,) = error_lines(captured.err)
    assert message in line, line
    assert "Traceback" not in captured.err
    assert not (tmp_path / "g").exists() or not any((tmp_path / "g").rglob("*.parquet"))


def test_a_manifest_naming_a_file_outside_the_gallery_is_one_line_exit_2_and_nothing_touched(
    gallery: Path, models, tmp_path: Path, capsys
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("the user's")
    hostile = tmp_path / "hostile"
    shutil.copytree(gallery, hostile)
    manifest = json.loads((hostile / "manifest.json").read_text())
    manifest["shards"][0]["file"] = str(canary)
    (hostile / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["index", "--out", str(hostile), "--faces", "best", *models]) == 2
    captured = capsys.readouterr()
    (line,) = error_lines(captured.err)
    assert str(canary) in line and "refused, nothing touched" in line, line
    assert canary.read_text() == "the user's" and (hostile / "shards" / "shard-00000.parquet").is_file()


MARKUP = "[red]x[/red]\x1b[2J"  # Rich markup and a terminal escape (clear the screen), as a subject


def test_gallery_strings_are_shown_literally(photos: list[Path], models, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    obama = next(p for p in photos if p.name == "obama_1.jpg")
    shutil.copy(obama, folder / "[blue]who.jpg")  # a file name with markup (no "/": it is one name)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text(f"path,subject\n[blue]who.jpg,{MARKUP}\n", encoding="utf-8")
    shutil.move(subjects, folder / "subjects.csv")
    out = tmp_path / "gallery"
    argv = ["index", str(folder), "--subjects", str(folder / "subjects.csv"), "--out", str(out), "--faces", "best"]
    assert main([*argv, *models]) == 0
    capsys.readouterr()
    query = next(p for p in photos if p.name == "obama_2.jpg")
    assert main(["search", str(query), "--gallery", str(out), "--top-k", "1"]) == 0
    shown = capsys.readouterr().out
    print(shown)
    assert "\x1b" not in shown  # no escape sequence reaches the terminal
    assert "→ [red]x[/red]\\x1b[2J (cosine" in shown and "[blue]who.jpg face 0" in shown


def test_search_verbose_prints_the_index_and_its_measured_recall(
    gallery: Path, photos: list[Path], models, tmp_path: Path, capsys
) -> None:
    """The default (auto) keeps a small gallery exact; an ivf built with --recall records what it measured on
    held-out queries (a quarter of the gallery's 3 faces, at least one), and search --verbose prints it (before:
    neither was measured, nor shown)."""
    obama = str(next(p for p in photos if p.name == "obama_2.jpg"))
    capsys.readouterr()
    assert main(["search", obama, "--gallery", str(gallery), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "index: IndexFlatIP (exact), chosen by --index auto: exact search, recall@1 and recall@10 1\n"
    )
    approximate = tmp_path / "gallery"
    shutil.copytree(gallery, approximate)
    rebuild = ["index", "--out", str(approximate), "--faces", "best", "--index", "ivf", "--recall", "0.9", *models]
    assert main(rebuild) == 0
    recorded = json.loads((approximate / "manifest.json").read_text())["index"]
    assert recorded["type"] == recorded["asked"] == "ivf" and recorded["parameters"]["nprobe"] >= 1
    measured = recorded["recall"]
    assert measured["target"] == 0.9 and measured["tuned"] == "nprobe" and measured["queries"] == 1
    assert measured["at_1"] >= 0.9 and 0 <= measured["at_10"] <= 1 and measured["latency_p50_ms"] > 0
    capsys.readouterr()
    assert main(["search", obama, "--gallery", str(approximate), "--verbose"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"index: {recorded['faiss']}: recall@1 {measured['at_1']:.3f}, recall@10 {measured['at_10']:.3f} on 1 "
        f"held-out query (target 0.9, nprobe tuned to it), {measured['latency_p50_ms']:.2f} ms per query (p50)"
    )
