"""bench both ways — the command line and the Python API — on the real fixtures with a tiny budget: the same
report structure (backends, batch sizes, models, the baseline and the published table; the face pipeline's
runs), the same refusals (error class, line after the CLI names the flag, exit code), and every option of the
command an option of the API, with the same defaults."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import build_parser, main
from facebatch.cli.bench import FIELD_FLAGS, bench_options
from facebatch.engines.bench.published import shipped_tables
from facebatch.workflows.bench import BenchOptions
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser

TINY = dict(warmup=0.0, iters=1, threads=1)
TINY_FLAGS = ["--warmup", "0", "--iters", "1", "--threads", "1"]
# flags that only say where the command line writes its reports, and argparse's own bookkeeping
CLI_ONLY = {"json", "markdown", "junit", "verbose", "help", "handler", "parser", "field_flags", "command", "argv"}
# the single flags that describe a foreign embedder: the command line makes them one EmbedderDescription
DESCRIPTION_FLAGS = {"mean", "std", "color_order", "embedding_size", "embedder_input", "embedder_output"}
# the flags named otherwise than the field they set (beside FIELD_FLAGS, which the CLI's errors use)
DEST_FIELDS = {"artifacts": "models", "backend": "backends", "compare": "published", "images": "photos"}
DEST_FIELDS |= {"model": "triton_model"}


def structure(report: dict) -> dict:
    """What a bench report is made of, without its timings (nor what they decide: which batch was fastest):
    the runs (artifact, model, size, backend, precision, batch sizes, timed calls), the baselines and the
    published comparisons."""
    return {
        "runs": [
            (r["artifact"], r["model"], r["input_size"], r["backend"], r["precision"])
            + ([t["batch"] for t in r["timings"]], [t["calls"] for t in r["timings"]])
            for r in report["runs"]
        ],
        "baselines": [(b["baseline"], b["artifact"], b["backend"]) for b in report["baselines"]],
        "comparisons": [(c["artifact"], c["backend"], c["table"], c["missing"]) for c in report["comparisons"]],
        "options": report["options"],
    }


def test_artifacts_give_the_same_report_both_ways(small_detector: Path, models_dir: Path, tmp_path: Path):
    baseline, table = models_dir / "det_500m.onnx", shipped_tables()[0]
    argv = ["bench", str(small_detector), "--backend", "ort-cpu,openvino", "--batch-sizes", "1,2", *TINY_FLAGS]
    argv += ["--baseline", str(baseline), "--compare", str(table), "--json", str(tmp_path / "cli.json")]
    assert main(argv) == 0
    from_cli = json.loads((tmp_path / "cli.json").read_text())
    report = api.bench(
        [small_detector],
        backends=["ort-cpu", "openvino"],
        batch_sizes=[1, 2],
        baseline=str(baseline),
        published=table,
        plot=tmp_path / "api.png",
        **TINY,
    )
    from_api = report.to_dict()
    assert structure(from_cli) == structure(from_api)
    assert [r[3] for r in structure(from_api)["runs"]] == ["ort-cpu", "openvino"]
    assert structure(from_api)["runs"][0][5] == [1, 2] and len(from_api["baselines"]) == 2
    assert from_cli["command"] == " ".join(["facebatch", *argv]) and from_api["command"] is None
    assert (tmp_path / "api.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the plot, written by the library
    assert report.to_markdown().startswith("# facebatch bench") and json.loads(report.to_json()) == json.loads(
        json.dumps(from_api, default=str)
    )


def test_the_face_pipeline_gives_the_same_report_both_ways(
    small_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path
):
    folder = tmp_path / "two"
    folder.mkdir()
    for photo in photos[:2]:
        shutil.copy(photo, folder)
    models = dict(detector=small_detector, embedder=batch_embedder)
    argv = ["bench", "--pipeline", str(folder), "--detector", str(small_detector), "--embedder", str(batch_embedder)]
    argv += ["--rounds", "1", "--process-runs", "0", "--no-insightface", "--threads", "1", "--lanes", "1"]
    assert main([*argv, "--json", str(tmp_path / "cli.json")]) == 0
    from_cli = json.loads((tmp_path / "cli.json").read_text())
    report = api.bench(pipeline=folder, rounds=1, process_runs=0, insightface=False, threads=1, lanes=1, **models)
    from_api = report.to_dict()
    for data in (from_cli, from_api):
        data["contenders"] = [{k: c[k] for k in ("name", "images", "faces")} for c in data["contenders"]]
        data["model_only"] = [
            (m["role"], m["artifact"], [t["batch"] for t in m["timings"]]) for m in data["model_only"]
        ]
        data["agreements"] = [(a["label"], a["passed"]) for a in data["agreements"]]
    for key in ("detector", "embedder", "backend", "contenders", "model_only", "agreements", "passed", "notes"):
        assert from_cli[key] == from_api[key], key
    assert [c["name"] for c in from_api["contenders"]] == ["facebatch pipeline", "per-image loop"]
    assert from_api["passed"] and from_api["notes"] == ["insightface was not run (turned off)"]


def _refusals(models_dir: Path, tmp_path: Path) -> list[tuple[list[str], dict, str, str]]:
    """(the command line's arguments, the API's keywords, the field, a part of the line) for each refusal."""
    official, embedder = str(models_dir / "det_500m.onnx"), str(models_dir / "mobilefacenet_128d.onnx")
    (tmp_path / "empty").mkdir(exist_ok=True)
    (tmp_path / "bad.yaml").write_text("note: not a table\n")
    empty, bad = str(tmp_path / "empty"), str(tmp_path / "bad.yaml")
    return [
        ([], {}, "pipeline", "name the artifacts to benchmark, or --pipeline DIR"),
        (
            [official, "--batch-sizes", "1,2"],
            dict(models=[official], batch_sizes=(1, 2)),
            "batch_sizes",
            "--batch-sizes 1",
        ),
        ([official, "--batch-sizes", "1,48"], dict(models=[official], batch_sizes=(1, 48)), None, "outside det_500m's"),
        ([official, "--backend", "ort-gpu"], dict(models=[official], backends=("ort-gpu",)), "backends", "'ort-gpu'"),
        ([official, "--iters", "0"], dict(models=[official], iters=0), "iters", "--iters must be at least 1, got 0"),
        ([official, "--warmup", "-1"], dict(models=[official], warmup=-1), "warmup", "--warmup must be 0 or more"),
        (
            [official, "--baseline", embedder, "--batch-sizes", "1"],
            dict(models=[official], baseline=embedder, batch_sizes=(1,)),
            "baseline",
            "--baseline mobilefacenet_128d.onnx is an embedder; none of the artifacts is",
        ),
        ([official, "--compare", bad], dict(models=[official], published=bad), None, "bad.yaml lacks backend"),
        (
            [official, "--images", empty],
            dict(models=[official], photos=[empty]),
            "photos",
            f"--images: no photos (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff) in {empty} or its subfolders",
        ),
        ([official, "--plot", empty], dict(models=[official], plot=empty), "plot", f"--plot {empty} is an existing"),
        (
            ["--pipeline", empty, "--backend", "ort-cpu,openvino"],
            dict(pipeline=empty, backends="ort-cpu,openvino"),
            "backends",
            "the face pipeline runs on one backend: give --backend one name, not ort-cpu, openvino",
        ),
        (["--pipeline", empty, official], dict(pipeline=empty, models=[official]), "pipeline", "--pipeline times"),
        (
            ["--pipeline", empty, "--plot", "p.png"],
            dict(pipeline=empty, plot="p.png"),
            "plot",
            "--plot draws artifacts' throughput",
        ),
        (
            ["--pipeline", empty, "--rounds", "0"],
            dict(pipeline=empty, rounds=0),
            "rounds",
            "--rounds must be at least 1",
        ),
        (
            ["--pipeline", empty, "--process-runs", "-1"],
            dict(pipeline=empty, process_runs=-1),
            "process_runs",
            "--process-runs must be 0 or more, got -1",
        ),
        (["--triton", "localhost:1"], dict(triton="localhost:1"), "triton_model", "--model is missing"),
        (["--model", "face_pipeline"], dict(triton_model="face_pipeline"), "triton", "--triton is missing"),
        (
            ["--triton", "localhost:1", "--model", "m", "--concurrency", "1", "--request-batch", "1", official],
            dict(triton="localhost:1", triton_model="m", models=[official]),
            "triton",
            "--triton times a served model alone",
        ),
    ]


def test_bad_input_is_refused_alike_both_ways(models_dir: Path, tmp_path: Path, capsys):
    """The same error class and exit code, and the same line once the command line names the field's flag:
    a fixed-batch file at batch 2, a batch size above the model's profile, an unknown backend, a baseline that
    cannot run beside the artifact, the face pipeline on two backends, a served model without its server, …"""
    for args, keywords, field, said in _refusals(models_dir, tmp_path):
        error = assert_same_refusal(["bench", *args], lambda k=keywords: api.bench(**k), capsys, FIELD_FLAGS)
        assert error.field == field, (args, error.field)
        capsys.readouterr()
        assert main(["bench", *args]) == error.exit_code
        (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("facebatch: error:")]
        assert said in line, (args, line)


def test_an_artifact_of_ours_is_refused_alike_both_ways(small_detector: Path, models_dir: Path, capsys):
    """A batch size above the artifact's profile; a baseline without batch 1 to compare at."""
    ours, official = str(small_detector), str(models_dir / "det_500m.onnx")
    for args, keywords, field, said in [
        (["--batch-sizes", "1,48"], dict(batch_sizes=(1, 48)), None, "batch size 48 is outside scrfd_500m_bnkps's"),
        (["--baseline", official, "--batch-sizes", "2"], dict(baseline=official, batch_sizes=(2,)), "baseline", ""),
    ]:
        call = lambda k=keywords: api.bench([ours], **TINY, **k)  # noqa: E731
        error = assert_same_refusal(["bench", ours, *TINY_FLAGS, *args], call, capsys, FIELD_FLAGS)
        assert error.field == field and said in str(error)
    assert str(error).startswith("baseline compares at batch 1")  # the command line: --baseline compares at batch 1


def test_every_option_of_the_command_is_an_option_of_the_api_with_its_default():
    """Before: the API's bench took backends, batch sizes, seconds and photos, and nothing of --baseline,
    --compare, --pipeline or --triton."""
    fields = {f.name for f in dataclasses.fields(BenchOptions)}
    dests = {a.dest for a in command_parser("bench")._actions} - CLI_ONLY
    set_by_flags = {DEST_FIELDS.get(dest, dest) for dest in dests - DESCRIPTION_FLAGS}
    assert set_by_flags <= fields, set_by_flags - fields
    assert fields - set_by_flags == {"embedder_description", "command"}  # the description flags; the record
    assert {FIELD_FLAGS[f] for f in FIELD_FLAGS} <= {
        s for a in command_parser("bench")._actions for s in a.option_strings
    }
    # the command line's defaults are the library's: nothing given, the options are BenchOptions()'s
    args = build_parser().parse_args(["bench"])
    args.argv = ["bench"]
    assert bench_options(args) == BenchOptions(command="facebatch bench")


@pytest.mark.parametrize("field", ["backends", "batch_sizes", "concurrency"])
def test_lists_and_paths_from_python_become_the_fields_values(field: str):
    given = dict(backends="ort-cpu,openvino", batch_sizes=[1, 2], concurrency=[1, 4])[field]
    options = BenchOptions(**{field: given}, models=["a.onnx"], plot="p.png")
    assert isinstance(getattr(options, field), tuple) and options.models == (Path("a.onnx"),)
    assert options.plot == Path("p.png") and BenchOptions(backends="ort-cpu,openvino").backends == (
        "ort-cpu",
        "openvino",
    )
