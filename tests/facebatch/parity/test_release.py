"""release and release --check both ways — the command line and ``facebatch.release`` / ``facebatch.check_release``
— on a small release of the small real detector: the same gates and verdict, the same check of a folder with a
planted file, the same refusals of bad options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.cli.errors import error_line
from facebatch.configs.arcface import DEFAULT_ARCFACE
from facebatch.configs.scrfd import DEFAULT_SCRFD, DEFAULT_SCRFD_SIZE
from facebatch.core.errors import SpecError
from facebatch.engines.bench.measure import Budget
from facebatch.workflows.release.options import ReleaseOptions, release_models
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser
from tests.facebatch.parity.test_convert import photo_folder
from tests.facebatch.workflows.release.test_check import handmade_release

GATES_OFF = ["--no-fp16", "--no-engines", "--no-triton"]  # export, verify and bench: the gates that run anywhere
BENCH = ["--backend", "ort-cpu", "--batch-sizes", "1,2", "--seconds", "0.2"]


def aliases() -> dict[str, str]:
    return command_parser("release").get_default("field_flags")


def options(artifact: Path, out: Path, images: Path, **changes) -> ReleaseOptions:
    quick = dict(bench_backends=("ort-cpu",), bench_batch_sizes=(1, 2), budget=Budget(warmup=0.1, seconds=0.2))
    off = dict(fp16=False, engines=False, triton=False)
    return ReleaseOptions(
        version="1.0", out=out, artifacts=[artifact], photos=api.photos([images]), **(quick | off | changes)
    )


@pytest.fixture(scope="module")
def both(small_detector: Path, photos: list[Path], tmp_path_factory: pytest.TempPathFactory):
    """The same release made both ways: (the API's result, the command's folder, its output lines, the photos)."""
    root = tmp_path_factory.mktemp("release_both_ways")
    images = photo_folder(photos, root / "photos")
    result = api.release(options(small_detector, root / "api", images))
    argv = ["release", "--artifact", str(small_detector), "--out", str(root / "cli"), "--version", "1.0"]
    code = main([*argv, "--images", str(images), *GATES_OFF, *BENCH])
    return result, code, root / "cli" / "facebatch-models-1.0", images


def test_a_release_gives_the_same_gates_and_verdict_both_ways(both, capsys):
    result, code, folder, _ = both
    assert result.passed and code == 0 and folder.is_dir()
    checked = api.check_release(
        folder, api.photos([folder.parent.parent / "photos"])
    )  # the command's folder checks out
    assert checked.passed, checked.problems()
    manifest = (folder / "MANIFEST.json").read_text()
    gates = [(g["gate"], g["status"]) for g in json.loads(manifest)["gates"]]
    assert gates == [(g.name, g.status) for g in result.gates]
    assert json.loads(result.to_json())["result"] == "RELEASE PASS" and "| bench | PASS |" in result.to_markdown()


def test_check_of_a_planted_file_fails_the_same_way(both, tmp_path: Path, capsys):
    result, _, _, images = both
    copy = Path(shutil.copytree(result.path, tmp_path / "copy"))
    (copy / "triton" / "x" / "1").mkdir(parents=True)
    (copy / "triton" / "x" / "1" / "model.py").write_text("import os\nos.system('id')\n")  # code serve would run
    capsys.readouterr()
    code = main(["release", "--check", str(copy), "--images", str(images)])
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    checked = api.check_release(copy, api.photos([images]))
    assert code == 1 and not checked.passed and checked.unlisted == ["triton/x/1/model.py"]
    assert last == checked.last_line() == "RELEASE CHECK FAIL: not listed in MANIFEST.json: 'triton/x/1/model.py'"
    anchored = ["release", "--check", str(result.path), "--images", str(images)]
    assert main([*anchored, "--manifest-sha256", result.manifest_sha256]) == 0
    assert api.check_release(result.path, api.photos([images]), manifest_sha256=result.manifest_sha256).passed
    other = "0" * 64  # the anchor of another release: nothing in this folder is believed
    assert main([*anchored, "--manifest-sha256", other]) == 1
    assert (
        capsys.readouterr().out.rstrip().splitlines()[-1]
        == api.check_release(result.path, api.photos([images]), manifest_sha256=other).last_line()
    )


def test_bad_options_are_refused_the_same_way(both, small_detector: Path, tmp_path: Path, capsys):
    result, _, folder, images = both
    cli = ["release", "--artifact", str(small_detector), "--out", str(tmp_path)]
    error = assert_same_refusal(
        [*cli, "--int8"], lambda: api.release(ReleaseOptions(artifacts=[small_detector], int8=True)), capsys, aliases()
    )
    shown = error_line(error, command_parser("release"), aliases())
    assert error.field == "int8" and shown.startswith("--int8 calibrates on photos and judges accuracy on them")
    error = assert_same_refusal(  # an accuracy floor that is no floor (issue 37)
        [*cli, "--accuracy-floor", "recall=1.5"],
        lambda: api.release(ReleaseOptions(artifacts=[small_detector], accuracy_floor="recall=1.5")),
        capsys,
        aliases(),
    )
    assert error.field == "accuracy_floor"
    assert error_line(error, command_parser("release"), aliases()).startswith("--accuracy-floor: recall must be in")
    assert_same_refusal(
        [*cli, "--require", "fp16", "--no-fp16"],
        lambda: api.release(ReleaseOptions(artifacts=[small_detector], require=("fp16",), fp16=False)),
        capsys,
        aliases(),
    )
    again = ["release", "--artifact", str(small_detector), "--out", str(folder.parent), "--version", "1.0"]
    error = assert_same_refusal(  # a release is never overwritten
        [*again, "--images", str(images)],
        lambda: api.release(options(small_detector, folder.parent, images)),
        capsys,
        aliases(),
    )
    assert isinstance(error, SpecError) and error.field == "version" and "never overwritten" in str(error)


def test_the_models_a_release_exports_are_named_in_the_library():
    """What the command used to decide itself: without artifacts, the catalog's detector and embedder."""
    defaults = release_models()
    assert [(m.model, m.weights) for m in defaults] == [(DEFAULT_SCRFD, None), (DEFAULT_ARCFACE, None)]
    assert defaults[0].size == (DEFAULT_SCRFD_SIZE, DEFAULT_SCRFD_SIZE)
    assert release_models([Path("a.onnx")]) == []
    (onnx_weights,) = release_models([Path("a.onnx")], detector_weights=Path("det_500m.onnx"))
    assert onnx_weights.model is None and onnx_weights.weights == Path("det_500m.onnx")  # export infers the variant


def test_a_check_without_the_photos_it_needs_is_refused_the_same_way(models_dir: Path, photos, tmp_path: Path, capsys):
    """A trained detector's strict verify needs faces: both ways refuse before verifying, naming --images / photos."""
    folder = handmade_release(tmp_path / "r", models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx", photos[:1])
    error = assert_same_refusal(
        ["release", "--check", str(folder)], lambda: api.check_release(folder), capsys, aliases()
    )
    shown = error_line(error, command_parser("release"), aliases())
    assert error.field == "photos" and shown.startswith("--images are needed: onnx/scrfd_500m_bnkps_640_keepbatch.onnx")


def test_card_gives_the_same_card_and_the_same_refusal_both_ways(both, tmp_path: Path, capsys):
    """facebatch card and facebatch.card on the command's release: the same card (the one the release wrote); a
    tampered copy refused the same way (the release check runs first)."""
    from facebatch.workflows.release.card import CardOptions

    _, _, folder, images = both
    capsys.readouterr()
    assert main(["card", str(folder), "--images", str(images)]) == 0
    printed = capsys.readouterr().out
    result = api.card(CardOptions(folder, photos=api.photos([images])))
    assert printed == result.text == (folder / "README.md").read_text() and result.same_as_released
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    (copy / "reports" / "bench.json").write_text("{}")
    error = assert_same_refusal(
        ["card", str(copy), "--images", str(images)],
        lambda: api.card(CardOptions(copy, photos=api.photos([images]))),
        capsys,
        {},
    )
    assert error.field == "release" and "changed (sha256 or size): reports/bench.json" in str(error)
