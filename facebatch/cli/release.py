"""``facebatch release``: the release pipeline's one command, and ``--check`` of a release folder."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from facebatch.cli import arguments
from facebatch.configs.arcface import DEFAULT_ARCFACE
from facebatch.configs.scrfd import DEFAULT_SCRFD, DEFAULT_SCRFD_SIZE
from facebatch.engines.bench.regression import DEFAULT_MAX_SLOWDOWN
from facebatch.workflows.release.defaults import (
    ACCURACY_FLOOR,
    RELEASE_BACKENDS,
    RELEASE_BENCH_BATCH_SIZES,
    RELEASE_BENCH_SECONDS,
    RELEASE_NAME,
    RELEASE_OUT,
    REQUIRABLE,
    SHA256_HEX,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "release",
        help="the release gate: export, verify, FP16, engines, bench (+ performance gate), Triton → build/release/<name>-<version>",
        description="Run every gate a release needs and write build/release/<name>-<version>/: export (or --artifact files "
        "as they are), verify --strict with check 4 against torch, the FP16 ONNX proven against its source, TensorRT engines "
        "where TensorRT is installed (said plainly when not), with --int8 the CPU INT8 ONNX gated by its accuracy, bench (and with --baseline-bench the performance gate: a batch "
        "size slower than the baseline by more than --max-slowdown on the same backend and machine class fails), a Triton "
        "repository. The folder holds the artifacts, every report, junit.xml (all reports and the gates, for CI), "
        "MANIFEST.json (sha256 and size of every file, versions, environment) and SUMMARY.md. The last line is RELEASE PASS "
        "or RELEASE FAIL: <gates>; exit 0 only on PASS. A failed release is left as <name>-<version>.failed. "
        "--check DIR re-verifies a release folder: the whole folder (a file MANIFEST.json does not list, a link, a name "
        "outside the folder fails), every hash, every artifact; --manifest-sha256 HEX (the sha256 release prints) anchors "
        "it outside the folder.",
    )
    parser.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="re-verify a release folder instead: the whole folder (every file listed, no links), hashes, verify --strict",
    )
    parser.add_argument(
        "--manifest-sha256",
        type=_sha256_hex,
        metavar="HEX",
        help="with --check: the sha256 'facebatch release' printed for the folder's MANIFEST.json, kept outside it; "
        "any other manifest fails the check",
    )
    parser.add_argument(
        "--detector",
        metavar="MODEL",
        help=f"the detector to export (default {DEFAULT_SCRFD}, unless --artifact is given)",
    )
    parser.add_argument(
        "--detector-weights", type=Path, metavar="FILE", help="its weights (default: seeded, for checking the pipeline)"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SCRFD_SIZE,
        metavar="N",
        help=f"detector input size (default {DEFAULT_SCRFD_SIZE})",
    )
    parser.add_argument(
        "--embedder",
        metavar="MODEL",
        help=f"the embedder to export (default {DEFAULT_ARCFACE}, unless --artifact is given)",
    )
    parser.add_argument("--embedder-weights", type=Path, metavar="FILE", help="its weights (default: seeded)")
    parser.add_argument(
        "--artifact",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.onnx",
        help="release this ONNX as it is (repeatable); its verify must pass like an export's",
    )
    parser.add_argument(
        "--reference",
        dest="references",
        type=_artifact_reference,
        action="append",
        default=[],
        metavar="ARTIFACT.onnx=REF",
        help="check 4's reference for one --artifact: 'torch' or an ONNX file (repeatable). Without it, a file "
        "made by fix, convert or quantize is compared with the file it records (sha256-checked), our FP32 "
        "artifacts with torch",
    )
    parser.add_argument(
        "--images", type=Path, metavar="PATH", help="photos for the proofs, the verify checks and bench"
    )
    parser.add_argument(
        "--out", type=Path, default=RELEASE_OUT, metavar="DIR", help=f"where releases go (default {RELEASE_OUT})"
    )
    parser.add_argument("--name", default=RELEASE_NAME, help=f"the release's name (default {RELEASE_NAME})")
    parser.add_argument(
        "--version",
        dest="release_version",
        metavar="V",
        help="its version (default: facebatch's version + the git commit)",
    )
    parser.add_argument(
        "--baseline-bench",
        type=Path,
        metavar="OLD/bench.json",
        help="an earlier release's reports/bench.json: the performance gate",
    )
    parser.add_argument(
        "--max-slowdown",
        type=float,
        default=DEFAULT_MAX_SLOWDOWN,
        metavar="X",
        help=f"how much slower than the baseline a batch size may get (default {DEFAULT_MAX_SLOWDOWN:g})",
    )
    parser.add_argument(
        "--backend",
        default=",".join(RELEASE_BACKENDS),
        metavar="B[,B…]",
        help=f"bench's backends (default {','.join(RELEASE_BACKENDS)})",
    )
    parser.add_argument(
        "--batch-sizes",
        type=arguments.parse_batch_sizes,
        default=RELEASE_BENCH_BATCH_SIZES,
        metavar="LIST",
        help=f"bench's batch sizes (default {','.join(map(str, RELEASE_BENCH_BATCH_SIZES))})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=RELEASE_BENCH_SECONDS,
        metavar="S",
        help=f"bench's timed seconds per batch size (default {RELEASE_BENCH_SECONDS:g})",
    )
    parser.add_argument(
        "--fp16", action=argparse.BooleanOptionalAction, default=True, help="the FP16 ONNX gate (default on)"
    )
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also the CPU INT8 ONNX of each artifact, its accuracy against FP32 a gate (needs --images; default off)",
    )
    parser.add_argument(
        "--engines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TensorRT engines where TensorRT is (default on)",
    )
    parser.add_argument(
        "--triton", action=argparse.BooleanOptionalAction, default=True, help="a Triton repository (default on)"
    )
    parser.add_argument(
        "--require",
        type=_gate_list,
        default=(),
        metavar="GATE[,GATE…]",
        help=f"gates that must run and pass: one that skips (no TensorRT, no baseline…) fails the release "
        f"with its reason; of {', '.join(REQUIRABLE)}. Export and verify are always required",
    )
    parser.add_argument(
        "--license",
        metavar="SPDX-OR-NAME",
        help="the licence of weights facebatch does not recognise (not InsightFace's, not seeded), e.g. Apache-2.0: "
        "a release refuses an artifact of unknown licence without it; a recognised licence is never replaced",
    )
    parser.add_argument(
        "--accuracy-floor",
        metavar="FIGURE=N[,…]",
        help="what every FP16, INT8 and engine twin keeps against its FP32 artifact on --images, or the release fails "
        "(reports/accuracy.json, the card's table): recall and pairs are shares of FP32's own recall on hand-labelled "
        "faces and pair accuracy, missed a share of FP32's faces, landmark_px a mean error, cosine a minimum; any of "
        f"them, the rest default (default {','.join(f'{k}={v:g}' for k, v in ACCURACY_FLOOR.items())})",
    )
    parser.set_defaults(
        handler=run,
        json=None,
        markdown=None,
        junit=None,
        field_flags={
            "photos": "--images",
            "version": "--version",
            "artifacts": "--artifact",
            "int8": "--int8",
            "bench_backends": "--backend",
        },
    )


def _gate_list(text: str) -> tuple[str, ...]:
    gates = tuple(g.strip() for g in text.split(",") if g.strip())
    unknown = [g for g in gates if g not in REQUIRABLE]
    if not gates or unknown:
        raise argparse.ArgumentTypeError(f"expected gates out of {', '.join(REQUIRABLE)}, got {text!r}")
    return gates


def _sha256_hex(text: str) -> str:
    if not SHA256_HEX.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected 64 hexadecimal digits (a sha256), got {text!r}")
    return text.strip().lower()


def _artifact_reference(text: str) -> tuple[str, str]:
    name, sep, reference = text.partition("=")
    if not sep or not name or not reference:
        raise argparse.ArgumentTypeError(f"expected ARTIFACT.onnx=REFERENCE (torch or an ONNX file), got {text!r}")
    return Path(name).name, reference


def run(args: argparse.Namespace) -> int:
    from facebatch.core.errors import SpecError

    if args.manifest_sha256 is not None and args.check is None:
        raise SpecError("--manifest-sha256 goes with --check DIR (it anchors the check of a release folder)")
    if args.check is None:
        return _release(args)
    ignored = _release_flags_given(args)
    if ignored:  # before the folder is read: a flag that would be silently ignored is refused
        raise SpecError(
            f"--check DIR re-verifies a release folder and takes only --manifest-sha256 and --images; "
            f"drop {', '.join(ignored)} (they make a release)"
        )
    return _check(args)


CHECK_FLAGS = ("check", "manifest_sha256", "images", "verbose", "help")  # the dests --check takes (and every command)


def _release_flags_given(args: argparse.Namespace) -> list[str]:
    """The flags on the command line that make a release, as typed (an abbreviation as its full flag)."""
    options = args.parser._option_string_actions
    given = []
    for token in args.argv:
        name = token.split("=", 1)[0]
        if not name.startswith("--") or name == "--":
            continue
        action = options.get(name) or next((a for flag, a in options.items() if flag.startswith(name)), None)
        if action is not None and action.dest not in CHECK_FLAGS:
            flag = name if name in options else max(action.option_strings, key=len)
            given.append(flag)
    return list(dict.fromkeys(given))


def _check(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from facebatch.cli.render import console_for
    from facebatch.cli.terminal import visible
    from facebatch.workflows.release.check import check_release
    from facebatch.workflows.release.manifest import MANIFEST

    result = check_release(args.check, arguments.photos(args), manifest_sha256=args.manifest_sha256)
    console = console_for(args)
    problems = [visible(problem) for problem in result.problems()]  # the folder's own words: one line each
    for problem in problems:
        console.print(f"[red]{escape(problem)}[/red]")
    console.print(result.counts())
    if result.manifest_sha256:
        print(f"{MANIFEST} sha256 {result.manifest_sha256}", flush=True)
    print(result.last_line(problems), flush=True)  # the verdict on one line that starts with it
    return 0 if result.passed else 1


def _release(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from facebatch.cli.render import console_for
    from facebatch.workflows.release.manifest import MANIFEST
    from facebatch.workflows.release.options import ReleaseOptions, release_models
    from facebatch.workflows.release.run import run_release

    models = release_models(
        args.artifact, args.detector, args.detector_weights, args.size, args.embedder, args.embedder_weights
    )
    references = {name: reference if reference == "torch" else Path(reference) for name, reference in args.references}
    options = ReleaseOptions(
        name=args.name,
        version=args.release_version,
        out=args.out,
        models=models,
        artifacts=args.artifact,
        references=references,
        require=args.require,
        photos=arguments.photos(args),
        fp16=args.fp16,
        int8=args.int8,
        engines=args.engines,
        bench_backends=args.backend,  # the options read the names
        bench_batch_sizes=args.batch_sizes,
        baseline_bench=args.baseline_bench,
        max_slowdown=args.max_slowdown,
        triton=args.triton,
        license=args.license,
        **({"accuracy_floor": args.accuracy_floor} if args.accuracy_floor is not None else {}),
    )
    options.budget = replace(options.budget, seconds=args.seconds)  # its warm-up stays the library's
    result = run_release(options)
    console = console_for(args)
    colours = {"pass": "green", "fail": "red", "skip": "yellow"}
    for gate in result.gates:
        colour = colours[gate.status]
        console.print(f"[{colour}]{gate.status.upper():4}[/{colour}] {escape(gate.name)}: {escape(gate.summary)}")
    console.print(f"wrote {result.path} ({len(result.files)} files; README.md, SUMMARY.md, MANIFEST.json, junit.xml)")
    # keep it outside the folder: 'release --check DIR --manifest-sha256 HEX' then fails on any other manifest
    print(f"{MANIFEST} sha256 {result.manifest_sha256}", flush=True)
    print(result.last_line(), flush=True)  # the last line a pipeline greps
    return 0 if result.passed else 1
