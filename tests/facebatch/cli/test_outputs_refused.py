"""Outputs never replace inputs, and an output file that is a folder is refused before any work
(issue 34, item 6): before, ``detect DIR --draw DIR`` re-encoded the user's photos over their
originals, and ``--json``/``-o`` naming a folder did all the work and then died with a traceback."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from facebatch.cli import main


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def photo_folder(photos: list[Path], tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("obama_1.jpg", "newton.png"):
        shutil.copy(photos[0].parent / name, folder)
    return folder


def refused(capsys, argv: list[str]) -> str:
    """Run ``argv``: exit 2, one error line, no traceback; that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("facebatch: error:"), err
    return lines[0]


def test_draw_into_the_photos_folder_is_refused(real_detector: Path, photo_folder: Path, capsys):
    before = tree_hashes(photo_folder)
    line = refused(capsys, ["detect", str(photo_folder), "--detector", str(real_detector), "--draw", str(photo_folder)])
    assert "--draw" in line and "never overwrites an input" in line and "newton.png" in line
    assert tree_hashes(photo_folder) == before


def test_draw_over_a_link_to_a_photo_is_refused(real_detector: Path, photo_folder: Path, tmp_path: Path, capsys):
    """Another name for an input (a hard link in the --draw folder) is the input."""
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    os.link(photo_folder / "newton.png", drawn / "newton.png")
    before = sha256(photo_folder / "newton.png")
    line = refused(capsys, ["detect", str(photo_folder), "--detector", str(real_detector), "--draw", str(drawn)])
    assert "newton.png" in line and "never overwrites an input" in line
    assert sha256(photo_folder / "newton.png") == before


def test_draw_elsewhere_still_writes_copies(real_detector: Path, photo_folder: Path, tmp_path: Path):
    before = tree_hashes(photo_folder)
    assert main(["detect", str(photo_folder), "--detector", str(real_detector), "--draw", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["newton.png", "obama_1.jpg"]
    assert tree_hashes(photo_folder) == before


@pytest.mark.parametrize("flag", ["--json", "-o"])
def test_an_output_file_that_is_a_folder_is_refused_before_work(
    real_detector: Path, batch_embedder: Path, photo_folder: Path, tmp_path: Path, capsys, flag: str
):
    folder = tmp_path / "existing"
    folder.mkdir()
    argv = ["embed", str(photo_folder), "--detector", str(real_detector), "--embedder", str(batch_embedder)]
    argv += ["-o", str(folder)] if flag == "-o" else ["-o", str(tmp_path / "e.npz"), "--json", str(folder)]
    line = refused(capsys, argv)
    assert "is an existing folder; name a file" in line
    assert not (tmp_path / "e.npz").exists() and list(folder.iterdir()) == []


def test_json_over_a_photo_is_refused(real_detector: Path, photo_folder: Path, capsys):
    target = photo_folder / "obama_1.jpg"
    before = sha256(target)
    line = refused(capsys, ["detect", str(photo_folder), "--detector", str(real_detector), "--json", str(target)])
    assert "--json" in line and "one of the inputs" in line
    assert sha256(target) == before


def test_verify_report_over_its_model_is_refused(real_detector: Path, tmp_path: Path, capsys):
    model = tmp_path / "model.onnx"
    shutil.copy(real_detector, model)
    before = sha256(model)
    line = refused(capsys, ["verify", str(model), "--json", str(model)])
    assert "one of the inputs" in line
    assert sha256(model) == before


def test_fix_output_that_is_a_folder_is_refused_before_work(models_dir: Path, tmp_path: Path, capsys):
    folder = tmp_path / "out.onnx"
    folder.mkdir()
    line = refused(capsys, ["fix", str(models_dir / "det_500m.onnx"), "-o", str(folder)])
    assert "-o" in line and "existing folder" in line


def test_photo_names_never_drive_the_terminal(real_detector: Path, photos: list[Path], tmp_path: Path, capsys):
    """A photo from an archive named with Rich markup and an escape sequence is shown as typed: before, the
    markup was interpreted (the name vanished into a colour) and ESC[2J reached the terminal raw."""
    folder = tmp_path / "archive"
    folder.mkdir()
    hostile = "[red]boss\x1b[2J.jpg"
    shutil.copy(photos[0].parent / "obama_1.jpg", folder / hostile)
    (folder / "[bold]broken\x1b]0;title\x07.jpg").write_bytes(b"not a photo")
    assert main(["detect", str(folder), "--detector", str(real_detector)]) == 1
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert "\x1b" not in both and "\x07" not in both
    assert "[red]boss\\x1b[2J.jpg" in captured.out  # the faces table
    assert "[bold]broken\\x1b]0;title\\x07.jpg" in captured.err  # the skipped line and the error line


def test_an_output_through_a_folder_that_does_not_exist_yet_is_still_the_input(
    real_detector: Path, photo_folder: Path, tmp_path: Path, capsys, monkeypatch
):
    """'new/../photo.jpg' names the photo once 'new' is made: before, the check ran before the folder existed
    (nothing there to compare), and the photo became JSON."""
    monkeypatch.chdir(photo_folder)
    before = sha256(photo_folder / "obama_1.jpg")
    line = refused(capsys, ["detect", "obama_1.jpg", "--detector", str(real_detector), "--json", "new/../obama_1.jpg"])
    assert "one of the inputs" in line
    model = tmp_path / "model.onnx"
    shutil.copy(real_detector, model)
    line = refused(capsys, ["verify", str(model), "--json", str(tmp_path / "new" / ".." / "model.onnx")])
    assert "one of the inputs" in line
    assert sha256(photo_folder / "obama_1.jpg") == before and sha256(model) == sha256(real_detector)


def test_every_command_refuses_to_write_over_what_it_reads(
    real_detector: Path, batch_embedder: Path, photo_folder: Path, tmp_path: Path, capsys
):
    """index --json over a photo or the gallery's manifest, search --json over its query, describe -o over its
    model, verify --json over a photo of --images: each wrote over its input before."""
    gallery = tmp_path / "gallery"
    models = ["--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main(["index", str(photo_folder), "--out", str(gallery), *models]) == 0
    capsys.readouterr()
    kept = {p: sha256(p) for p in [*photo_folder.iterdir(), gallery / "manifest.json"]}
    photo = photo_folder / "obama_1.jpg"
    cases = [
        ["index", str(photo_folder), "--out", str(gallery), *models, "--json", str(photo)],
        ["index", str(photo_folder), "--out", str(gallery), *models, "--json", str(gallery / "manifest.json")],
        ["search", str(photo), "--gallery", str(gallery), "--json", str(photo)],
        ["verify", str(real_detector), "--images", str(photo_folder), "--json", str(photo)],
    ]
    for argv in cases:
        line = refused(capsys, argv)
        assert "--json" in line and "one of the inputs" in line, argv
    foreign = tmp_path / "foreign.onnx"
    shutil.copy(batch_embedder, foreign)
    line = refused(capsys, ["describe", str(foreign), "-o", str(foreign)])
    assert "one of the inputs" in line
    assert {p: sha256(p) for p in kept} == kept and sha256(foreign) == sha256(batch_embedder)
    # a report beside the photos, in their folder, is no photo: still written
    assert (
        main(["detect", str(photo_folder), "--detector", str(real_detector), "--json", str(photo_folder / "f.json")])
        == 0
    )


@pytest.mark.parametrize("command", ["convert", "quantize"])
@pytest.mark.parametrize("report", ["artifact", "sidecar"])
def test_a_report_over_the_file_the_command_writes_is_refused_before_work(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys, command: str, report: str
):
    """Before: --json/--markdown naming the artifact (or its sidecar) passed the check, and the report was written
    over the artifact the command had just published."""
    out = tmp_path / "out.onnx"
    target = out if report == "artifact" else out.with_suffix(".json")
    argv = [command, str(models_dir / "mobilefacenet_128d.onnx"), "-o", str(out), "--markdown", str(target)]
    argv += ["--fp16"] if command == "convert" else ["--images", str(photos[0])]
    assert main(argv) == 2
    assert f"--markdown {target} is one of the inputs" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []  # refused before any work: nothing written
