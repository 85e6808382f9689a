"""The CLI as a new user meets it: one flag for the input size, errors that say
what is really wrong, no flag silently ignored, reports to standard output, seeded artifacts
named so, a hint when fix can repair a failing file."""

import json
import shutil
from pathlib import Path

import pytest

from facebatch.cli import main


def official_models(models_dir: Path) -> list[str]:
    """The flags that name the official small files as the pipeline's models: quick, and never seen by a fixture."""
    return ["--detector", str(models_dir / "det_500m.onnx"), "--embedder", str(models_dir / "mobilefacenet_128d.onnx")]


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


def test_compare_and_search_share_one_match_threshold(capsys):
    """Before: compare called two faces the same person at cosine 0.3, search at 0.35 (0.3 gave two false "same"
    in 300 labelled pairs). One default, the library's, in both commands, the API and --help."""
    import inspect

    from facebatch import api
    from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
    from facebatch.workflows.faces import CompareOptions
    from facebatch.workflows.gallery import SearchOptions
    from facebatch.workflows.pairs import PairsOptions

    assert DEFAULT_MATCH_THRESHOLD == 0.35
    assert CompareOptions(Path("a"), Path("b")).threshold == SearchOptions([], Path("g")).threshold == 0.35
    assert PairsOptions(Path("p.csv")).threshold == 0.35
    for function in (api.compare, api.compare_pairs, api.search):  # None: the options' default, never restated
        assert inspect.signature(function).parameters["threshold"].default is None
    for command in ("compare", "search"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "(default 0.35)" in " ".join(capsys.readouterr().out.split()), command


def test_compare_pairs_reports_each_pair_and_the_scores_and_names_a_faceless_photo(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    from tests.facebatch.workflows.test_pairs import labelled_pairs

    csv = labelled_pairs(photos, tmp_path, extra="{obama_1},{no_face},0\n")
    models = official_models(models_dir)
    argv = ["compare", "--pairs", str(csv), *models, "--threads", "1", "--markdown", str(tmp_path / "r.md")]
    assert main(argv) == 1  # every other pair judged; the photo with no face named, exit 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("row 2: ") and "obama_1.jpg vs " in lines[0]
    assert "→ same person (labelled same ✓)" in lines[0]
    assert lines[6].endswith("no_face.png: no face (labelled different)")
    assert "accuracy at 0.35: 100 % (6/6 labelled pairs, 3 same, 3 different)" in out and "ROC AUC 1.0000" in out
    faceless = photos[0].parent / "no_face.png"
    assert err.splitlines()[-1] == f"facebatch: error: 1 photo with no face: {faceless} (their pairs were not judged)"
    assert "| 8 |" in (tmp_path / "r.md").read_text()
    with pytest.raises(SystemExit) as refused:
        main(["compare", str(photos[0]), "--pairs", str(csv)])
    assert (
        refused.value.code == 2 and "compare takes two photos or --pairs FILE.csv, not both" in capsys.readouterr().err
    )
    assert main(["compare", "--pairs", str(tmp_path / "nope.csv")]) == 2
    assert error_lines(capsys) == [
        f"facebatch: error: --pairs {tmp_path / 'nope.csv'} is not a file; pass a CSV of file_x,file_y[,label] rows"
    ]


def test_search_marks_matches_below_the_threshold_and_names_an_npz_query_by_its_photo(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: a match below the threshold read like any other, and a query from embed's .npz was called
    'q.npz face 0' instead of the photo embed recorded for that row."""
    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    images = photos[0].parent
    models = official_models(models_dir)
    gallery, npz = tmp_path / "gallery", tmp_path / "q.npz"
    assert (
        main(["index", str(images / "obama_1.jpg"), str(images / "biden_1.jpg"), "--out", str(gallery), *models]) == 0
    )
    assert main(["embed", str(images / "obama_2.jpg"), "-o", str(npz), *models]) == 0
    capsys.readouterr()
    assert main(["search", str(npz), str(images / "rob_lowe_2.jpg"), "--gallery", str(gallery), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("obama_2.jpg face 0 → obama_1.jpg (cosine 0.7") and "below" not in lines[0]
    assert lines[1].startswith("    2. -  cosine ") and lines[1].endswith(" below 0.35  biden_1.jpg face 0")
    assert lines[2].startswith("rob_lowe_2.jpg face 0 → unknown (cosine ") and " below 0.35, " in lines[2]


# -- advice that runs (issue 39, items 2, 3, 4): every command the CLI prints runs as printed --------------------------
def printed_command(line: str, prefix: str = "") -> list[str]:
    """The argv of a command line the CLI printed (``prefix`` and the leading 'facebatch' dropped)."""
    import shlex

    argv = shlex.split(line.removeprefix(prefix))
    assert argv[0] == "facebatch", line
    return argv[1:]


def test_verify_names_the_fix_of_a_detector_that_keeps_a_batch_of_1_and_the_fix_runs_as_printed(
    models_dir: Path, tmp_path: Path, capsys, monkeypatch
):
    """Outputs [1, HW*2, C] and Reshapes that keep the batch: verify failed check 2 with no repair line, and fix
    said nothing of what it changed (its sidecar's repairs were [])."""
    monkeypatch.chdir(tmp_path)  # the printed repair writes into the working folder
    source = models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx"
    assert main(["verify", str(source), "--batch-sizes", "1,2"]) == 1
    shown = capsys.readouterr().out
    repair = next(line for line in shown.splitlines() if line.startswith("repair: "))
    argv = printed_command(repair, "repair: ")
    assert argv == ["fix", str(source), "-o", "scrfd_500m_bnkps_640_keepbatch_batch.onnx"]
    assert main([*argv, "--batch-sizes", "1,2"]) == 0  # as printed (a quicker verify afterwards)
    fixed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fixed: ")]
    assert fixed[0] == "fixed: input images dim 0 fixed to 1 → symbolic dim 0 'batch': it takes any number of frames"
    sidecar = json.loads((tmp_path / "scrfd_500m_bnkps_640_keepbatch_batch.json").read_text())
    assert [r["node"] for r in sidecar["repairs"]] == [
        "input images",
        "outputs " + ", ".join(f"out{i}" for i in range(9)),
    ]


def test_a_missing_gpu_provider_advises_a_backend_the_command_takes(models_dir: Path, photos, capsys):
    """detect --backend ort-cuda on a machine without CUDA said "pass --allow-fallback", which only bench takes."""
    from facebatch.engines.runners.availability import detect_runtimes

    if detect_runtimes().provider_problem("CUDAExecutionProvider") is None:
        pytest.skip("CUDA runs here: nothing is refused")
    argv = ["detect", str(photos[0]), "--detector", str(models_dir / "det_500m.onnx"), "--backend", "ort-cuda"]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert line.endswith("; or run on the CPU: --backend ort-cpu") and "fallback" not in line
    advice = line.rsplit(": ", 1)[1].split()  # the flag and its value, as printed
    assert main([*argv[:-2], *advice]) == 0
    bench = ["bench", str(models_dir / "det_500m.onnx"), "--backend", "ort-cuda"]
    assert main(bench) == 2 and error_lines(capsys)[0].endswith("; or run on the CPU: --backend ort-cpu")


def test_the_serve_commands_a_written_repository_prints_run_with_facebatch_s_tritonserver(
    models_dir: Path, batch_embedder: Path, tmp_path: Path, capsys
):
    """triton --pipeline on the default onnxruntime runtime wrote a README saying 'facebatch serve REPO', which the
    tritonserver facebatch bundles (python backend only) refuses. Now the README's commands: each is accepted by
    its command, the repository it says to write is written, and the bundled server takes what the last serves."""
    import shlex

    from facebatch.cli import build_parser
    from facebatch.core.errors import SpecError
    from facebatch.engines.triton.install import TritonInstall, check_backends
    from facebatch.workflows.fix import fix_onnx

    detector = fix_onnx(models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx", tmp_path / "det_batch.onnx").path
    repo = tmp_path / "repo"
    assert main(["triton", str(detector), str(batch_embedder), "--pipeline", "--out", str(repo)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "facebatch serve needs a tritonserver with Triton's onnxruntime backend, or these models" in shown
    bundled = TritonInstall(binary=Path("tritonserver"), source="nvidia-pytriton")
    with pytest.raises(SpecError, match="has the python backend only"):
        check_backends(bundled, repo)
    commands = [line for line in (repo / "README.md").read_text().splitlines() if line.startswith("facebatch ")]
    for command in commands:  # argparse takes each as printed (PHOTOS/ stands for the reader's photos)
        build_parser().parse_args(printed_command(command))
    write = next(printed_command(c) for c in commands if c.startswith("facebatch triton "))
    assert main(write) == 0
    last = [c for c in commands if c.startswith("facebatch serve ")][-1]
    serve = printed_command(last)
    assert Path(serve[1]) == Path(write[write.index("--out") + 1]) and shlex.join(["facebatch", *serve]) == last
    check_backends(bundled, Path(serve[1]))  # the bundled server serves what the README's last serve line names


def test_release_check_refuses_the_flags_it_does_not_take_before_reading_the_folder(tmp_path: Path, capsys):
    """--artifact given with --check was silently ignored."""
    argv = ["release", "--check", str(tmp_path / "nowhere"), "--artifact", "x.onnx", "--no-fp16", "--images", "."]
    assert main(argv) == 2
    assert error_lines(capsys) == [
        "facebatch: error: --check DIR re-verifies a release folder and takes only --manifest-sha256 and --images; "
        "drop --artifact, --no-fp16 (they make a release)"
    ]


def test_every_command_takes_photos_in_subfolders_and_says_where_it_looked(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: detect and embed said 'no images found in nest' for photos in nest/a/b, which index walked."""
    nest, empty = tmp_path / "nest", tmp_path / "empty"
    (nest / "a" / "b").mkdir(parents=True)
    (empty / "a").mkdir(parents=True)
    shutil.copy(photos[0].parent / "obama_1.jpg", nest / "a" / "b" / "obama_1.jpg")
    (nest / "a" / "link.jpg").symlink_to(photos[0].parent / "biden_1.jpg")  # a link inside a folder: not followed
    models = official_models(models_dir)
    assert main(["detect", str(nest), *models[:2], "--json", str(tmp_path / "faces.json")]) == 0
    found = json.loads((tmp_path / "faces.json").read_text())["images"]
    assert [Path(p["path"]).relative_to(nest).as_posix() for p in found] == ["a/b/obama_1.jpg"]
    assert "skipped 1 link in" in capsys.readouterr().err
    assert main(["embed", str(nest), "-o", str(tmp_path / "faces.npz"), *models]) == 0
    capsys.readouterr()
    assert main(["detect", str(empty), *models[:2]]) == 2
    assert error_lines(capsys) == [
        f"facebatch: error: no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {empty} or its subfolders; "
        "pass photos or folders of photos"
    ]
    assert main(["verify", str(models_dir / "det_500m.onnx"), "--images", str(empty)]) == 2
    assert error_lines(capsys) == [
        f"facebatch: error: --images: no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {empty} or its "
        "subfolders; pass a photo or a folder of photos"
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["detect", "{photo}", "--detector", "{models}/scrfd_500m_bnkps_640_keepbatch.onnx", "--size", "320"],
            "detector scrfd_500m_bnkps_640_keepbatch.onnx runs at 640x640 only, not at --size 320x320: its input is "
            "fixed in the file. Drop it, or export a 320x320 detector from this file's weights",
        ),
        (["detect", "{photo}", "--detector", "{models}", "--threads", "2"], "--detector {models} is a folder; name an"),
        (["bench", "{models}/det_500m.onnx", "--threads", "-2"], "--threads must be at least 1, got -2"),
        (["bench", "{models}/det_500m.onnx", "--threads", "0"], "--threads must be at least 1, got 0"),
        (["quantize", "{models}/det_500m.onnx", "--images", "{photo}", "--threads", "-2"], "--threads must be at"),
        (
            ["index", "{photo}", "--out", "{tmp}/g", "--index", "ivfpq", "--index-param", "m=-3"],
            "--index-param: index parameter m=-3 must be a positive integer, or 0 to choose it from the data; index "
            "ivfpq takes nlist (default from the data), nprobe (default tuned to the recall target), m (default from the data), nbits",
        ),
        (
            ["index", "{photo}", "--out", "{tmp}/g", "--index-param", "m=three"],
            "is not NAME=INTEGER with a positive integer (for example nprobe=32); the parameters are hnsw: m,",
        ),
        (
            ["search", "{tmp}/faces.json", "--gallery", "{tmp}/g"],
            "query {tmp}/faces.json is JSON, not a photo; search takes photos, folders of photos, or the .npz of "
            "embeddings that embed writes",
        ),
        (
            ["search", "{tmp}/faces.npz", "--gallery", "{tmp}/g"],
            "query {tmp}/faces.npz is not an .npz of embeddings (it is not a zip archive); search takes photos,",
        ),
    ],
)
def test_silent_surprises_are_refused_in_one_line(argv, message, models_dir: Path, photos, tmp_path: Path, capsys):
    """Before: --size 320 ran a fixed-640 detector at 640 without a word, --threads -2 was taken, m=-3 was 'not
    NAME=INTEGER', a folder as a model 'does not exist', and a JSON query advised loading pickles."""
    if argv[0] in ("index", "search"):
        pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    if argv[0] == "search":  # a gallery to search, and a report where a query belongs
        models = [
            "--detector",
            str(models_dir / "det_500m.onnx"),
            "--embedder",
            str(models_dir / "mobilefacenet_128d.onnx"),
        ]
        assert main(["index", str(photos[0].parent / "obama_1.jpg"), "--out", str(tmp_path / "g"), *models]) == 0
        (tmp_path / "faces.json").write_text('{"images": []}\n')
        (tmp_path / "faces.npz").write_text('{"images": []}\n')  # JSON named .npz: numpy would try it as a pickle
        capsys.readouterr()
    fill = {"tmp": tmp_path, "models": models_dir, "photo": photos[0].parent / "obama_1.jpg"}
    assert main([a.format(**fill) for a in argv]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message.format(**fill) in errors[0], errors
    assert not (tmp_path / "g").exists() or argv[0] == "search"  # refused before the gallery was made


def test_subjects_rows_that_match_no_photo_are_said_and_none_matching_is_refused(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    """Before: a CSV whose paths matched no photo left the gallery unlabelled, exit 0, without a word."""
    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    images = photos[0].parent
    table = tmp_path / "subjects.csv"
    table.write_text("path,subject\nphotos/obama_1.jpg,Obama\nphotos/biden_1.jpg,Biden\n")  # wrong folder
    models = official_models(models_dir)
    argv = ["index", str(images / "obama_1.jpg"), "--out", str(tmp_path / "g"), "--subjects", str(table), *models]
    assert main(argv) == 2
    assert error_lines(capsys) == [
        f"facebatch: error: --subjects {table}: none of its 2 rows names a photo being indexed ('photos/obama_1.jpg', "
        f"'photos/biden_1.jpg'); paths are read relative to the CSV's folder {tmp_path}: fix the paths, or index the "
        "photos the CSV names"
    ]
    assert not (tmp_path / "g").exists()  # refused before any work
    table.write_text(f"path,subject\n{images / 'obama_1.jpg'},Obama\nphotos/biden_1.jpg,Biden\n")
    assert main(argv) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"--subjects {table}: 1 of its 2 rows names no photo being indexed ('photos/biden_1.jpg')" in err


def test_a_damaged_shard_is_named_with_the_index_run_that_repairs_it_and_that_run_does(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    """search used to advise editing manifest.json by hand or a new gallery; indexing into the same gallery again
    quarantines the shard and embeds its photos again, and now search says so (and the advice works)."""
    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    images = photos[0].parent
    models = official_models(models_dir)
    gallery, indexed = tmp_path / "gallery", [str(images / "obama_1.jpg"), str(images / "biden_1.jpg")]
    assert main(["index", *indexed, "--out", str(gallery), *models]) == 0
    shard = gallery / "shards" / "shard-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:-4] + b"XXXX")  # the same size, another sha256
    search = ["search", str(images / "obama_2.jpg"), "--gallery", str(gallery), *models]
    capsys.readouterr()
    assert main(search) == 2
    (line,) = error_lines(capsys)
    assert line.endswith(
        f"indexing the same photos into {gallery} again repairs it: it moves shard-00000.parquet to "
        f"{gallery / 'quarantine'} and embeds those photos again (nothing to edit by hand)"
    )
    assert "new gallery" not in line and "manifest.json" not in line
    assert main(["index", *indexed, "--out", str(gallery), *models]) == 0  # the repair, as said
    assert main(search) == 0 and [p.name for p in (gallery / "quarantine").iterdir()][0].endswith("shard-00000.parquet")


def test_the_default_install_has_the_index_extra_the_walkthrough_reaches():
    """Issue 39, item 9: the README's walkthrough reaches index and search, which need the index extra (faiss-cpu,
    pyarrow); make venv (the README's first line) installs it by name, not by way of the test extra."""
    import re

    from tests.conftest import PROJECT

    makefile = (PROJECT / "Makefile").read_text()
    (install,) = [line for line in makefile.splitlines() if "pip install" in line and "-e '.[" in line]
    extras = set(re.search(r"-e '\.\[(.*?)\]'", install).group(1).split(","))
    assert "index" in extras, install
    (declared,) = re.findall(r"^index = \[(.*)\]$", (PROJECT / "pyproject.toml").read_text(), re.MULTILINE)
    assert "faiss-cpu" in declared and "pyarrow" in declared, declared
    pytest.importorskip("faiss", reason="the index extra is installed by make venv")
    pytest.importorskip("pyarrow", reason="the index extra is installed by make venv")


def test_the_pipeline_commands_default_to_precision_auto_and_say_so():
    """A new user gets each model's fastest proven precision (fp32 where nothing is proven) without asking."""
    from facebatch.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for command in ("detect", "embed", "compare", "index", "search", "bench"):
        (flag,) = [a for a in commands[command]._actions if "--precision" in a.option_strings]
        assert flag.default == "auto" and "(default auto)" in flag.help, command
        assert "search follows the precisions the gallery recorded" in flag.help, command
