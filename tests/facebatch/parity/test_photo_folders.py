"""The proof photos of fix, convert, quantize and build both ways: a folder is resolved by the use case (its
Options), walked with its subfolders, so the command line and the Python API hand the work the same photos, and
a folder without photos is refused with the same line. Before, the command line resolved ``--images`` itself and
the API another way (a folder's top level only, any file named outright)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.core.errors import SpecError
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser

# command → (the module whose use case the command line calls, its name there and in facebatch.api, the API call)
COMMANDS = {
    "fix": ("facebatch.workflows.fix", "fix_model", lambda model, out, photos: api.fix(model, out, photos=photos)),
    "convert": (
        "facebatch.workflows.convert",
        "convert_fp16",
        lambda model, out, photos: api.convert(model, out, photos=photos),
    ),
    "quantize": (
        "facebatch.workflows.quantize",
        "quantize_int8",
        lambda model, out, photos: api.quantize(model, photos, out=out),
    ),
    "build": (
        "facebatch.workflows.build",
        "build_engine_job",
        lambda model, out, photos: api.build(model, out, photos=photos),
    ),
}


def flags(command: str, out: Path) -> list[str]:
    """What each command needs besides the model and the photos."""
    return {"build": [], "convert": ["--fp16", "-o", str(out)]}.get(command, ["-o", str(out)])


@pytest.fixture()
def nest(photos: list[Path], tmp_path: Path) -> Path:
    """Two photos in nest/a/b and one in nest, a hidden copy beside them (skipped)."""
    root = tmp_path / "nest"
    (root / "a" / "b").mkdir(parents=True)
    for photo in photos[:2]:
        shutil.copy(photo, root / "a" / "b" / photo.name)
    shutil.copy(photos[2], root / photos[2].name)
    shutil.copy(photos[2], root / f".{photos[2].name}")
    return root


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_of_photos_reaches_the_use_case_as_the_same_photos_both_ways(
    command: str, nest: Path, models_dir: Path, photos: list[Path], tmp_path: Path, monkeypatch
):
    module, name, call = COMMANDS[command]
    handed: list[list[Path]] = []

    def use_case(*args, **kwargs):  # what the command would run on, then stop
        options = next(a for a in [*args, *kwargs.values()] if hasattr(a, "photos"))
        handed.append(list(options.photos))
        raise SpecError("stopped here")

    monkeypatch.setattr(f"{module}.{name}", use_case)
    monkeypatch.setattr(f"facebatch.api.{name}", use_case)
    model, out = models_dir / "det_500m.onnx", tmp_path / "out" / "m.onnx"
    argv = [command, str(model), "--images", str(nest), *flags(command, out)]
    assert main(argv) == 2
    with pytest.raises(SpecError, match="stopped here"):
        call(model, out if command != "build" else None, [nest])
    expected = [nest / photos[2].name, *(nest / "a" / "b" / p.name for p in photos[:2])]
    assert handed == [expected, expected]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_without_photos_is_refused_the_same_way(command: str, models_dir: Path, tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    (empty / "a" / "b").mkdir(parents=True)
    model, out = models_dir / "det_500m.onnx", tmp_path / "out" / "m.onnx"
    argv = [command, str(model), "--images", str(empty), *flags(command, out)]
    error = assert_same_refusal(
        argv,
        lambda: COMMANDS[command][2](model, out if command != "build" else None, [empty]),
        capsys,
        command_parser(command).get_default("field_flags"),
    )
    assert (
        error.field == "photos"
        and f"no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {empty} or its" in str(error)
    )


def test_release_and_its_check_refuse_a_folder_without_photos_the_same_way(models_dir: Path, tmp_path: Path, capsys):
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    model = models_dir / "det_500m.onnx"
    aliases = command_parser("release").get_default("field_flags")
    options = lambda: api.ReleaseOptions(artifacts=[model], photos=[empty], out=tmp_path / "r")  # noqa: E731
    error = assert_same_refusal(
        ["release", "--artifact", str(model), "--images", str(empty), "--out", str(tmp_path / "r")],
        lambda: api.release(options()),
        capsys,
        aliases,
    )
    assert error.field == "photos" and f"in {empty} or its subfolders" in str(error)
    error = assert_same_refusal(
        ["release", "--check", str(tmp_path), "--images", str(empty)],
        lambda: api.check_release(tmp_path, [empty]),
        capsys,
        aliases,
    )
    assert error.field == "photos" and f"in {empty} or its subfolders" in str(error)
