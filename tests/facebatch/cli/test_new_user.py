"""The CLI as a new user meets it: one flag for the input size, errors that say
what is really wrong, no flag silently ignored, reports to standard output, seeded artifacts
named so, a hint when fix can repair a failing file."""

import json
import shutil
from pathlib import Path

import pytest

from facebatch.cli import main


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--weights", "{tmp}/missing.onnx"], "weights file {tmp}/missing.onnx does not exist"),
        (
            ["export", "scrfd_500m", "--weights", "{tmp}/photo.pth"],
            "photo.pth is not a PyTorch checkpoint (it is a JPEG image)",
        ),
        (
            ["export", "arcface_r50", "--weights", "{models}/det_500m.onnx"],
            "det_500m.onnx is an SCRFD face detector, but arcface_r50 names an ArcFace network",
        ),
        (
            ["describe", "{models}/det_500m.onnx"],
            "det_500m.onnx is an SCRFD face detector; describe writes specs of foreign face embedders",
        ),
        (
            ["verify", "{models}/det_500m.onnx", "--images", "{tmp}/nope.jpg"],
            "--images: {tmp}/nope.jpg does not exist; pass a photo or a folder of photos",
        ),
        (
            ["verify", "{models}/det_500m.onnx", "--reference", "tourch"],
            "--reference 'tourch' is neither 'torch' nor an existing file; did you mean torch?",
        ),
        (["verify", "{models}/det_500m.onnx", "--json", "/proc/facebatch-nope/r.json"], "pass a writable --json"),
        (
            ["verify", "{models}/det_500m.onnx", "--mean", "0", "--std", "1"],
            "det_500m.onnx is an SCRFD face detector; drop --embedder-spec and the values that describe a foreign",
        ),
        (["verify", "{models}/det_500m.onnx", "--batch-sizes", "1"], "give at least one batch size of 2 or more"),
        (
            ["verify", "{models}/mobilefacenet_128d.onnx", "--size", "112,128"],
            "is an embedder: it takes one input size",
        ),
    ],
)
def test_bad_input_gets_one_line_that_says_what_is_wrong(
    argv, message, models_dir: Path, photos, tmp_path: Path, capsys
):
    shutil.copy(photos[0].parent / "t1.jpg", tmp_path / "photo.pth")
    fill = {"tmp": tmp_path, "models": models_dir}
    assert main([a.format(**fill) for a in argv]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message.format(**fill) in errors[0], errors


def test_opset_is_refused_before_anything_starts_and_its_range_is_in_help(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["export", "scrfd_500m", "--opset", "9"])
    assert refused.value.code == 2 and "opset 9 is outside the supported range 13–23" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "supported 13–23 (default 17)" in capsys.readouterr().out


def test_one_size_flag_in_every_command(capsys):
    for command in ("export", "verify", "fix", "describe", "bench"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert "--size" in shown and "--input-size" not in shown, command


@pytest.mark.slow  # exports a model from torch
def test_seeded_artifacts_are_named_so_and_a_replacement_is_announced(tmp_path: Path, capsys):
    argv = ["export", "scrfd_500m_bnkps", "--size", "64", "--out", str(tmp_path), "--parity-batch-sizes", "1,2"]
    assert main(argv) == 0
    assert (
        tmp_path / "scrfd_500m_64_seeded_batch.onnx"
    ).is_file() and "exists; it is replaced" not in capsys.readouterr().err
    assert main(argv) == 0
    assert (
        f"{tmp_path / 'scrfd_500m_64_seeded_batch.onnx'} exists; it is replaced if this export passes its proofs"
        in " ".join(capsys.readouterr().err.split())
    )


@pytest.mark.slow  # exports a model from torch
def test_a_dynamic_size_artifact_is_verified_at_two_sizes_and_strict_needs_a_reference(tmp_path: Path, capsys):
    assert (
        main(
            [
                "export",
                "scrfd_500m_bnkps",
                "--size",
                "64",
                "--dynamic-size",
                "--out",
                str(tmp_path),
                "--parity-batch-sizes",
                "1,2",
            ]
        )
        == 0
    )
    artifact = str(tmp_path / "scrfd_500m_dyn_seeded_batch.onnx")
    capsys.readouterr()
    assert main(["verify", artifact, "--batch-sizes", "1,2", "--json", "-"]) == 0
    report = json.loads(capsys.readouterr().out)  # the JSON alone on standard output; the table went to stderr
    assert report["sizes"] == ["64x64", "64x96"] and report["passed"]
    assert [(c["number"], c["size"]) for c in report["checks"]][:2] == [(1, [64, 64]), (1, [64, 96])]
    assert main(["verify", artifact, "--batch-sizes", "1,2", "--size", "96x160", "--strict"]) == 1
    errors = error_lines(capsys)
    assert errors == [
        f"facebatch: error: {Path(artifact).name} skipped under --strict: 4 reference parity (no reference given "
        "(the torch model for our artifacts, or another ONNX file))"
    ]
    assert main(["verify", artifact, "--mean", "0"]) == 2
    assert "carries its own facebatch spec; drop --embedder-spec and the values" in error_lines(capsys)[0]


def test_a_failing_verify_says_when_fix_can_repair_it(models_dir: Path, photos, tmp_path: Path, capsys):
    argv = [
        "verify",
        str(models_dir / "det_500m.onnx"),
        "--size",
        "320",
        "--batch-sizes",
        "1,2",
        "--images",
        str(photos[0]),
        "--markdown",
        str(tmp_path / "r.md"),
    ]
    assert main(argv) == 1
    shown = capsys.readouterr().out
    assert "repairs this graph by surgery" in " ".join(shown.split())  # a note says fix can repair it
    repair = next(line for line in shown.splitlines() if line.startswith("repair: facebatch fix "))
    assert repair.endswith(f"-o {Path(argv[1]).stem}_batch.onnx")  # the command, runnable as printed
    markdown = (tmp_path / "r.md").read_text()
    assert (
        "repairs this graph by surgery" in markdown and f"- 0: {photos[0].name}" in markdown
    )  # the report says which photo frame 0 is


def test_describe_marks_what_it_read_given_and_assumed(models_dir: Path, capsys):
    assert main(["describe", str(models_dir / "mobilefacenet_128d.onnx"), "--mean", "127.5"]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")}
    assert lines["mean"].endswith("# given")
    assert lines["embedding_size"] == "embedding_size: 128  # read from the graph"
    assert lines["input_size"] == "input_size: [112, 112]  # read from the graph"
    assert (
        "# assumed: ArcFace preprocessing; state --std" in lines["std"]
        and "# assumed: the file's name" in lines["name"]
    )


def test_the_official_detector_is_verified_at_the_square_sizes_its_one_symbol_allows(
    models_dir: Path, tmp_path: Path, capsys
):
    """det_500m.onnx's input is [1, 3, '?', '?']: one symbol, one value, so square sizes only. verify used to end with
    "symbol '?' is 640 in input.1 but 960 in input.1" (exit 2); now it judges the file (exit 1: it mixes frames)."""
    det = str(models_dir / "det_500m.onnx")
    assert main(["verify", det, "--batch-sizes", "1,2", "--json", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sizes"] == ["640x640", "320x320"]
    assert any("one symbol '?': checked at square sizes only" in n for n in report["notes"])
    assert "symbol '?' is" not in capsys.readouterr().err
    assert main(["verify", det, "--size", "640x960"]) == 2
    assert error_lines(capsys) == [
        "facebatch: error: det_500m.onnx names its input height and width with one symbol '?', so it "
        "takes square inputs only; pass a square --size such as 960 instead of 640x960"
    ]


def test_fix_of_the_official_detector_writes_proves_verifies_and_exits_0(
    models_dir: Path, photos, tmp_path: Path, capsys
):
    """fix used to write its output and then fail on the '?' symbol; its check runs the source one frame at a time."""
    out = tmp_path / "det_500m_batch.onnx"
    argv = [
        "fix",
        str(models_dir / "det_500m.onnx"),
        "-o",
        str(out),
        "--batch-sizes",
        "1,3",
        "--images",
        str(photos[0].parent),
        "--json",
        str(tmp_path / "fix.json"),
        "--strict",
    ]
    assert main(argv) == 0, error_lines(capsys)
    report = json.loads((tmp_path / "fix.json").read_text())
    assert report["passed"] and report["sizes"] == ["640x640", "320x320"]
    check4 = [c for c in report["checks"] if c["number"] == 4]
    assert all(c["status"] == "pass" and "one frame at a time" in c["summary"] for c in check4)
    assert not error_lines(capsys)


def classifier(path: Path) -> Path:
    """A 10-class image classifier: one [N, 10] output from a Softmax, which family detection calls an embedder."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 112, 112])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(nodes, "classifier", [x], [y], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_compare_refuses_a_classifier_and_says_what_it_assumed_and_picked(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    first, second = (next(p for p in photos if p.name == n) for n in ("obama_1.jpg", "biden_1.jpg"))
    argv = ["compare", str(first), str(second), "--detector", str(real_detector)]
    assert main([*argv, "--embedder", str(classifier(tmp_path / "classifier.onnx"))]) == 2
    errors = error_lines(capsys)
    assert (
        len(errors) == 1 and "classifier.onnx does not look like a face embedder: its output has 10 values" in errors[0]
    )
    assert "comes from a Softmax" in errors[0]
    assert main([*argv, "--embedder", str(batch_embedder)]) == 0
    err = capsys.readouterr().err
    assert "assuming ArcFace preprocessing" in err  # as verify and fix say it


def test_a_spec_describe_writes_stands_for_its_model(
    real_detector: Path, batch_embedder: Path, photos, tmp_path: Path, capsys
):
    spec = tmp_path / "specs" / "mfn.yaml"
    spec.parent.mkdir()
    assert main(["describe", str(batch_embedder), "-o", str(spec)]) == 0
    assert "model: " in spec.read_text()
    pair = [str(p) for p in photos if p.name in ("obama_1.jpg", "obama_2.jpg")]
    assert main(["compare", *pair, "--detector", str(real_detector), "--embedder", str(spec)]) == 0
    assert "same person" in capsys.readouterr().out
    assert (
        main(["verify", str(batch_embedder), "--embedder-spec", str(spec), "--batch-sizes", "1,2"]) == 0
    )  # model: is no obstacle


def test_argument_errors_are_one_line_and_verbose_works_after_the_command(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["compare", "a.jpg", "b.jpg", "--threshold", "5"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "a cosine lies between -1 and 1, got 5" in err
    with pytest.raises(SystemExit):
        main(["detect", "photos", "--batch-size", "-3"])
    assert "a batch size is a positive integer such as 8, got -3" in capsys.readouterr().err
    assert main(["models", "--verbose"]) == 0


def test_counts_read_as_sentences():
    from facebatch.core.words import counted

    assert counted(1, "face") == "1 face" and counted(2, "face") == "2 faces" and counted(0, "file") == "0 files"


def test_a_photo_passed_as_a_model_is_called_a_photo(photos: list[Path], capsys):
    assert main(["verify", str(photos[0])]) == 2
    assert f"{photos[0].name} is not an ONNX model (it is a JPEG image); pass the .onnx file" in error_lines(capsys)[0]
