"""What a command reads and writes, from its arguments: the inputs an output may never replace, the
report targets refused before the slow work, and the command line as typed (for reports)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

from facebatch.cli.values import STDOUT

# the arguments that name what a command writes; every other path argument names something it reads
OUTPUT_DESTS = frozenset(
    {"json", "markdown", "junit", "output", "output_file", "plot", "draw", "out", "log", "trt_cache", "timing_cache"}
)
# input folders read whole (a gallery, a model repository, a release, a python environment); other input
# folders are read for their photos
WHOLE_FOLDER_DESTS = frozenset({"gallery", "repository", "check", "python_env"})


def input_files(args: argparse.Namespace, photos: Sequence[Path] = (), folders: Sequence[Path] = ()):  # InputFiles
    """Everything a command reads, from its arguments: each path argument but the outputs (a folder of
    photos by its photos' suffixes, a gallery or repository whole), plus ``photos`` and ``folders`` (read
    whole) the command found itself. What ``check_output_file`` refuses to write over."""
    from facebatch.core.atomic import InputFiles
    from facebatch.engines.pipeline.photo_files import IMAGE_SUFFIXES

    files, photo_folders, whole = list(photos), [], list(folders)
    for dest, value in vars(args).items():
        if dest in OUTPUT_DESTS:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(item) if dest == "reference" and isinstance(item, str) and item != "torch" else item
            if not isinstance(path, Path) or path == STDOUT:
                continue
            if path.is_dir():
                (whole if dest in WHOLE_FOLDER_DESTS else photo_folders).append(path)
            elif path.exists():
                files.append(path)
    return InputFiles(files, [(f, IMAGE_SUFFIXES) for f in photo_folders] + [(f, None) for f in whole])


def check_report_targets(args: argparse.Namespace, inputs=None, written: Sequence[Path] = ()) -> None:
    """Refuse --json/--markdown/--junit paths that are folders, inputs (default: ``input_files(args)`` with the
    files the command itself ``written``, its artifact and sidecar), or unwritable, before the slow work."""
    from facebatch.core.atomic import check_output_file

    inputs = input_files(args, photos=written) if inputs is None else inputs
    for flag, target in (("--json", args.json), ("--markdown", args.markdown), ("--junit", args.junit)):
        if target is not None and target != STDOUT:
            check_output_file(target, flag, inputs)


def command_line(args: argparse.Namespace) -> str:
    """The command as typed, for reports."""
    return shlex.join(["facebatch", *args.argv])


def reports_to_stdout(args: argparse.Namespace) -> bool:
    return STDOUT in (getattr(args, "json", None), getattr(args, "markdown", None), getattr(args, "junit", None))
