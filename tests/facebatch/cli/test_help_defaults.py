"""One owner per default: every default the command line shows is the library's, and every
"(default X)" in --help is what argparse really uses. A default changed in the library changes
the CLI with it; a help text left behind fails here."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from facebatch.cli import build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def option(command: str, flag: str) -> argparse.Action:
    parser = commands()[command]
    return next(a for a in parser._actions if flag in a.option_strings)


def shown(value: Any) -> str:
    """A default as --help writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def field_default(cls: type, name: str) -> Any:
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    return found.default_factory() if found.default is dataclasses.MISSING else found.default


def library_defaults() -> list[tuple[str, str, Any]]:
    """(command, flag, the library's default) for every flag whose default the library owns."""
    from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE
    from facebatch.engines.pipeline.options import PipelineSettings
    from facebatch.engines.triton.options import RepositoryOptions
    from facebatch.exporter.options import ExportSettings
    from facebatch.verify.verify_job import VerifyOptions
    from facebatch.workflows.bench import BenchOptions
    from facebatch.workflows.convert import ConvertOptions
    from facebatch.workflows.faces import CompareOptions
    from facebatch.workflows.gallery import SearchOptions
    from facebatch.workflows.quantize import QuantizeOptions
    from facebatch.workflows.release.options import ReleaseOptions

    rows: list[tuple[str, str, Any]] = [
        ("export", "--out", field_default(ExportSettings, "out_dir")),
        ("export", "--opset", field_default(ExportSettings, "opset")),
        ("export", "--parity-batch-sizes", field_default(ExportSettings, "parity_batch_sizes")),
        ("export", "--seed", field_default(ExportSettings, "seed")),
        ("convert", "--batch-sizes", field_default(ConvertOptions, "batch_sizes")),
        ("convert", "--seed", field_default(ConvertOptions, "seed")),
        ("quantize", "--backend", ",".join(field_default(QuantizeOptions, "bench_backends"))),
        ("quantize", "--batch-sizes", field_default(QuantizeOptions, "bench_batch_sizes")),
        ("quantize", "--seconds", field_default(QuantizeOptions, "budget").seconds),
        ("bench", "--backend", ",".join(field_default(BenchOptions, "backends"))),
        *[
            ("bench", f"--{name.replace('_', '-')}", field_default(BenchOptions, name))
            for name in ("batch_sizes", "warmup", "seconds", "seed", "detect_batch", "embed_batch", "workers")
            + ("precision", "process_runs", "rounds", "concurrency", "request_batch", "trt_fp16")
        ],
        ("triton", "--runtime", field_default(RepositoryOptions, "runtime")),
        ("triton", "--instances", field_default(RepositoryOptions, "instances")),
        ("triton", "--max-queue-delay-us", field_default(RepositoryOptions, "max_queue_delay_us")),
        ("release", "--size", DEFAULT_SCRFD_SIZE),
        ("release", "--out", field_default(ReleaseOptions, "out")),
        ("release", "--name", field_default(ReleaseOptions, "name")),
        ("release", "--max-slowdown", field_default(ReleaseOptions, "max_slowdown")),
        ("release", "--backend", ",".join(field_default(ReleaseOptions, "bench_backends"))),
        ("release", "--batch-sizes", field_default(ReleaseOptions, "bench_batch_sizes")),
        ("release", "--seconds", field_default(ReleaseOptions, "budget").seconds),
        ("release", "--fp16", field_default(ReleaseOptions, "fp16")),
        ("release", "--int8", field_default(ReleaseOptions, "int8")),
        ("release", "--engines", field_default(ReleaseOptions, "engines")),
        ("release", "--triton", field_default(ReleaseOptions, "triton")),
    ]
    for command in ("verify", "fix"):
        rows += [
            (command, "--batch-sizes", field_default(VerifyOptions, "batch_sizes")),
            (command, "--seed", field_default(VerifyOptions, "seed")),
            (command, "--det-thresh", field_default(VerifyOptions, "det_thresh")),
            (command, "--nms-thresh", field_default(VerifyOptions, "nms_thresh")),
        ]
    from facebatch.engines.gallery import defaults as gallery

    rows += [
        ("index", "--photos-per-shard", gallery.PHOTOS_PER_SHARD),
        ("index", "--faces", gallery.DEFAULT_FACES),
        ("index", "--index", gallery.DEFAULT_INDEX),
        ("search", "--top-k", gallery.DEFAULT_TOP_K),
        ("search", "--threshold", field_default(SearchOptions, "threshold")),
        ("compare", "--threshold", field_default(CompareOptions, "threshold")),
    ]
    for command in ("detect", "embed", "compare", "index", "search"):
        rows += [
            (command, "--batch-size", field_default(PipelineSettings, "batch_size")),
            (command, "--workers", field_default(PipelineSettings, "read_workers")),
            (command, "--det-thresh", field_default(PipelineSettings, "det_thresh")),
            (command, "--nms-thresh", field_default(PipelineSettings, "nms_thresh")),
            (command, "--max-faces", field_default(PipelineSettings, "max_faces")),
            (command, "--max-photo-pixels", field_default(PipelineSettings, "max_photo_pixels")),
        ]
    rows += [
        (c, "--embed-batch-size", field_default(PipelineSettings, "embed_batch_size"))
        for c in ("embed", "compare", "index", "search")
    ]
    return rows


@pytest.mark.parametrize("command, flag, library", library_defaults(), ids=lambda v: str(v))
def test_the_command_line_default_is_the_librarys(command: str, flag: str, library: Any):
    default = option(command, flag).default
    if isinstance(library, Path) or isinstance(default, Path):
        default, library = Path(default), Path(library)
    if isinstance(library, (tuple, list)):
        default, library = tuple(default), tuple(library)
    assert default == library, f"facebatch {command} {flag} defaults to {default!r}, the library to {library!r}"


def help_defaults(parsers: dict[str, argparse.ArgumentParser] | None = None) -> list[tuple[str, str, str, Any]]:
    """(command, flag, the default its help names, argparse's default) wherever help says '(default X'."""
    found = []
    for command, parser in (parsers or commands()).items():
        for action in parser._actions:
            match = re.search(r"\(default:? ([^);\s]+)", action.help or "")
            if match and action.default not in (None, argparse.SUPPRESS) and action.option_strings:
                found.append((command, action.option_strings[0], match.group(1).rstrip(",:"), action.default))
    return found


def test_help_texts_name_defaults_at_all():
    assert len(help_defaults()) > 50  # the parametrised test below reads a real list


@pytest.mark.parametrize("command, flag, said, default", help_defaults(), ids=lambda v: str(v))
def test_help_says_the_default_argparse_uses(command: str, flag: str, said: str, default: Any):
    if said in ("the", "this", "each", "its", "a", "an"):  # a default in words ("the verifier's"), not a value
        pytest.skip(f"{flag}'s help names its default in words")
    assert said == shown(default), (
        f"facebatch {command} --help says {flag} defaults to {said!r}; it is {shown(default)!r}"
    )


def test_a_help_text_left_behind_is_caught():
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--batch-sizes", default=(1, 8, 32), help="bench's batch sizes (default 1,8)"
    )  # the old default
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds (default 1)")
    (_, _, said, default), (_, _, said_seconds, seconds) = help_defaults({"toy": parser})
    assert said != shown(default) and said_seconds == shown(seconds)
