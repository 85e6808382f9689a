"""``facebatch`` command line: one module per command, shared argument groups in
``arguments``, rendering in ``render``; the domain logic lives in the packages.

Library errors become one line on stderr and a non-zero exit: 2 for bad input (files,
names, sizes, weights), 1 when a check or an export proof fails. Heavy libraries (torch,
onnx, runtimes) are imported by the commands that need them, so start-up stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from facebatch.cli import (
    bench,
    build,
    card,
    compare,
    convert,
    describe,
    detect,
    embed,
    export,
    fix,
    index,
    models,
    prove_bf16,
    quantize,
    release,
    search,
    serve,
    triton,
    verify,
)
from facebatch.cli.errors import error_line, flagged
from facebatch.cli.terminal import terminal_output, visible
from facebatch.core.errors import FacebatchError
from facebatch.core.interrupts import Interrupted, as_interrupted, interrupts_as_exceptions, kept
from facebatch.core.run import Run
from facebatch.core.version import __version__
from facebatch.engines.runners.availability import check_onnxruntime_install

COMMANDS = (
    export,
    models,
    verify,
    fix,
    convert,
    quantize,
    prove_bf16,
    build,
    bench,
    detect,
    embed,
    compare,
    index,
    search,
    triton,
    serve,
    release,
    card,
    describe,
)


class _Parser(argparse.ArgumentParser):
    """An argument error is one line (what is wrong, and where the usage is), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


VERBOSE_HELP = "show the libraries' own warnings (hidden by default: the one error line says what to change)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="facebatch",
        description="Batch-safe ONNX re-exports of InsightFace SCRFD face detectors and ArcFace embedders, proven before they are written.",
    )
    parser.add_argument("--version", action="version", version=f"facebatch {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    for sub in commands.choices.values():  # after the command too; SUPPRESS keeps one given before it
        sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        sub.set_defaults(parser=sub)  # an error's field is named as this command's flag (cli/errors.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (``entry`` is what the ``facebatch`` command runs)."""
    global _interrupted
    _interrupted = False
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # reports record the command line
    with Run():  # at its end, a run that wrote nothing into the --out it made leaves no empty folder
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command ``args`` names, its errors and signals as one line on stderr and an exit status."""
    global _interrupted
    try:
        with interrupts_as_exceptions(), warnings.catch_warnings():
            if args.verbose:
                warnings.simplefilter("always")
            elif (
                not sys.warnoptions
            ):  # libraries' warnings would come before our one error line; --verbose or -W shows them
                warnings.simplefilter("ignore")
            parser, aliases = getattr(args, "parser", None), getattr(args, "field_flags", None)
            with terminal_output(args.verbose, lambda message, field: flagged(message, field, parser, aliases)):
                check_onnxruntime_install()  # before any work: a mixed install gives wrong providers, not errors
                return int(args.handler(args))
    except FacebatchError as exc:
        line = error_line(exc, getattr(args, "parser", None), getattr(args, "field_flags", None))
        print(f"facebatch: error: {visible(line)}", file=sys.stderr)  # one line, whatever a name in it holds
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted) as exc:
        signal = as_interrupted(exc)
        assert signal is not None
        _interrupted = True
        said = f"{visible(kept(exc))}; " if kept(exc) else ""  # what the run kept, where it says
        print(f"facebatch: interrupted ({signal.name}): stopped; {said}nothing half-written was left", file=sys.stderr)
        return signal.exit_code


_interrupted = False


def entry() -> NoReturn:
    """The ``facebatch`` command: ``main``, then exit. After a signal the process ends at once, past the
    interpreter's own shutdown: the clean-up has run, and finalisers of a half-finished library call
    (torch's exporter holds a FakeTensorMode while it traces) must not run on a state the signal broke."""
    code = main()
    if _interrupted:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
