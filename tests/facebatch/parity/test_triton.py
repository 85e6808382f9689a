"""triton and serve both ways — the command line and the Python function (``facebatch.workflows``) — on the real
fixtures: the same repository (every file, byte for byte), and the same refusal of bad input (an artifact inside
the repository that force would replace, a hostile manifest, a changed file, options that cannot work; a missing
repository, a python environment that is none, a log written over an input, a port that is none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.errors import SpecError
from facebatch.engines.triton.defaults import MANIFEST
from facebatch.engines.triton.install import find_tritonserver
from facebatch.workflows.serve import ServeOptions, serve
from facebatch.workflows.triton import RepositoryOptions, TritonOptions, triton
from tests.data.folders import snapshot
from tests.facebatch.parity.both_ways import assert_same_refusal

FLAGS = ["--device", "cpu", "--max-batch", "8", "--instances", "2"]
SERVING = RepositoryOptions(device="cpu", max_batch=8, instances=2)


def test_the_same_repository_both_ways(real_detector: Path, batch_embedder: Path, tmp_path: Path, capsys):
    """Written into the same folder (its README names it) one way, then the other: the same files, the same bytes."""
    out = tmp_path / "repository"
    artifacts = [real_detector, batch_embedder]
    argv = ["triton", *map(str, artifacts), "--out", str(out), "--runtime", "python", "--pipeline", "--instances", "2"]
    assert main(argv) == 0
    by_cli = snapshot(out)
    shutil.rmtree(out)
    serving = RepositoryOptions(runtime="python", pipeline=True, instances=2)
    result = triton(TritonOptions(artifacts, out, serving))
    assert snapshot(out) == by_cli
    files = {rel: sha for rel, sha in by_cli.items() if sha != "folder" and rel != MANIFEST}
    assert result.files == files == json.loads((out / MANIFEST).read_text())["sha256"]
    assert [m["name"] for m in result.to_dict()["models"]] == [real_detector.stem, batch_embedder.stem, "face_pipeline"]
    assert "| face_pipeline | pipeline | python (cpu) |" in result.to_markdown()
    assert json.loads(result.to_json())["files"] == files


def test_force_replaces_only_what_it_wrote_the_same_way(small_detector: Path, tmp_path: Path, capsys):
    out = tmp_path / "repository"
    assert main(["triton", str(small_detector), "--out", str(out), *FLAGS]) == 0
    (out / "notes.txt").write_text("the user's\n")
    options = TritonOptions([small_detector], out, SERVING)
    assert_same_refusal(["triton", str(small_detector), "--out", str(out), *FLAGS], lambda: triton(options), capsys)
    forced = RepositoryOptions(device="cpu", max_batch=4, force=True)
    assert (
        main(["triton", str(small_detector), "--out", str(out), "--device", "cpu", "--max-batch", "4", "--force"]) == 0
    )
    by_cli = snapshot(out)
    triton(TritonOptions([small_detector], out, forced))
    assert snapshot(out) == by_cli and (out / "notes.txt").read_text() == "the user's\n"


def test_the_trust_refusals_are_the_same_both_ways(small_detector: Path, tmp_path: Path, capsys):
    out = tmp_path / "repository"
    triton(TritonOptions([small_detector], out, SERVING))
    before = snapshot(out)
    inside = out / small_detector.stem / "1" / "model.onnx"
    forced = RepositoryOptions(device="cpu", max_batch=8, instances=2, force=True)
    argv = ["triton", str(inside), "--out", str(out), *FLAGS, "--force"]
    error = assert_same_refusal(argv, lambda: triton(TritonOptions([inside], out, forced)), capsys)
    assert error.field == "out" and "holds the artifact" in str(error) and snapshot(out) == before

    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "files": [*manifest["files"], "../canary"]}))
    before = snapshot(out)
    argv = ["triton", str(small_detector), "--out", str(out), *FLAGS, "--force"]
    error = assert_same_refusal(argv, lambda: triton(TritonOptions([small_detector], out, forced)), capsys)
    assert "'../canary'" in str(error) and snapshot(out) == before

    (out / MANIFEST).write_text(json.dumps(manifest))
    config = out / small_detector.stem / "config.pbtxt"
    config.write_text(config.read_text() + "# tuned by hand\n")
    argv = ["triton", str(small_detector), "--out", str(out), "--device", "cpu", "--force"]
    changed = RepositoryOptions(device="cpu", force=True)
    error = assert_same_refusal(argv, lambda: triton(TritonOptions([small_detector], out, changed)), capsys)
    assert error.field == "force" and "changed since facebatch wrote it" in str(error)


@pytest.mark.parametrize(
    "flags, options, field",
    [
        (["--instances", "0"], {"instances": 0}, "instances"),
        (["--runtime", "tensorrt", "--device", "cpu"], {"runtime": "tensorrt", "device": "cpu"}, "device"),
        (
            ["--max-photo-pixels", "10", "--max-batch-pixels", "5"],
            {"max_photo_pixels": 10, "max_batch_pixels": 5},
            "max_batch_pixels",
        ),
        (["--pipeline"], {"pipeline": True}, "pipeline"),
        (["--gallery", "gallery"], {"gallery": Path("gallery")}, "gallery"),  # face_search needs the pipeline
    ],
)
def test_options_that_cannot_work_are_refused_the_same_way(
    small_detector: Path, tmp_path: Path, capsys, flags: list[str], options: dict, field: str
):
    out = tmp_path / "repository"
    argv = ["triton", str(small_detector), "--out", str(out), *flags]
    error = assert_same_refusal(
        argv, lambda: triton(TritonOptions([small_detector], out, RepositoryOptions(**options))), capsys
    )
    assert error.field == field and not out.exists()


def test_a_folder_that_is_no_gallery_is_refused_the_same_way(
    real_detector: Path, batch_embedder: Path, tmp_path: Path, capsys
):
    out, artifacts = tmp_path / "repository", [real_detector, batch_embedder]
    (tmp_path / "notes").mkdir()
    argv = ["triton", *map(str, artifacts), "--out", str(out), "--runtime", "python", "--pipeline"]
    serving = RepositoryOptions(runtime="python", pipeline=True, gallery=tmp_path / "notes")
    error = assert_same_refusal(
        [*argv, "--gallery", str(tmp_path / "notes")], lambda: triton(TritonOptions(artifacts, out, serving)), capsys
    )
    assert error.field == "gallery" and "is not a gallery" in str(error) and not out.exists()


def test_a_fixed_batch_file_is_refused_the_same_way(models_dir: Path, tmp_path: Path, capsys):
    fixed = models_dir / "mobilefacenet_128d.onnx"
    out = tmp_path / "repository"
    error = assert_same_refusal(
        ["triton", str(fixed), "--out", str(out)], lambda: triton(TritonOptions([fixed], out)), capsys
    )
    assert "has a fixed batch axis (1)" in str(error) and "repair it with fix" in str(error)


def test_an_int8_file_is_served_only_where_its_gate_passed_the_same_way(
    small_detector: Path, photos: list[Path], tmp_path: Path, capsys
):
    from facebatch.workflows.quantize import QuantizeOptions, quantize_int8

    int8 = tmp_path / "made" / "small_int8.onnx"
    int8.parent.mkdir()
    made = quantize_int8(small_detector, QuantizeOptions(photos=photos[:4], bench=False, max_drop=0.5), int8)
    assert made.passed and made.written
    triton(TritonOptions([int8], tmp_path / "proven"))  # its gate passed on this CPU class: served
    # the same bytes with no sidecar beside them, and with a sidecar that says the gate was forced: refused, nothing written
    bare = tmp_path / "bare" / int8.name
    bare.parent.mkdir()
    shutil.copy(int8, bare)
    sidecar = json.loads(int8.with_suffix(".json").read_text())
    sidecar["proof"]["forced"] = True
    int8.with_suffix(".json").write_text(json.dumps(sidecar))
    for artifact, why in ((bare, "has no sidecar .json of its own"), (int8, "did not pass quantize's accuracy gate")):
        out = tmp_path / f"never_{artifact.parent.name}"
        error = assert_same_refusal(
            ["triton", str(artifact), "--out", str(out)],
            lambda a=artifact, o=out: triton(TritonOptions([a], o)),
            capsys,
        )
        assert why in str(error) and "serves INT8 only where the gate passed" in str(error) and not out.exists()


def test_serve_refuses_the_same_way_before_it_starts(small_detector: Path, tmp_path: Path, capsys):
    missing = tmp_path / "none"
    error = assert_same_refusal(["serve", str(missing)], lambda: serve(ServeOptions(missing)), capsys)
    assert error.field == "repository" and "does not exist" in str(error)

    out = tmp_path / "repository"
    triton(TritonOptions([small_detector], out, RepositoryOptions(runtime="python")))
    log = out / small_detector.stem / "1" / "model.onnx"  # tritonserver's log over a file of the repository
    error = assert_same_refusal(
        ["serve", str(out), "--log", str(log)], lambda: serve(ServeOptions(out, log=log)), capsys
    )
    assert error.field == "log" and "is one of the inputs" in str(error) and (out / MANIFEST).is_file()

    argv = ["serve", str(out), "--python-env", str(tmp_path)]
    error = assert_same_refusal(argv, lambda: serve(ServeOptions(out, python_env=tmp_path)), capsys)
    assert error.field == "python_env" and "is not a python environment" in str(error)

    try:
        find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))
    argv = ["serve", str(out), "--grpc-port", "0"]
    error = assert_same_refusal(argv, lambda: serve(ServeOptions(out, grpc_port=0)), capsys)
    assert error.field == "grpc_port" and "is not a port number" in str(error)
