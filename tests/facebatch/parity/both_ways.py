"""Run one command both ways — the command line (``facebatch.cli.main``) and the Python API — and compare:
the same refusal means the same error class's exit code and the same line, once the CLI has named the
error's field as its flag (``facebatch.cli.errors``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from facebatch.cli import build_parser, main
from facebatch.cli.errors import error_line
from facebatch.core.errors import FacebatchError


def command_parser(command: str):
    """The argparse parser of one command (its flags name the fields)."""
    return build_parser()._subparsers._group_actions[0].choices[command]


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]


def assert_same_refusal(argv: Sequence[str], call: Callable[[], object], capsys, aliases=None) -> FacebatchError:
    """The CLI refuses ``argv`` with exactly the line the API's error gives, and the same exit code."""
    capsys.readouterr()
    code = main(list(argv))
    lines = error_lines(capsys)
    with pytest.raises(FacebatchError) as raised:
        call()
    expected = f"facebatch: error: {error_line(raised.value, command_parser(argv[0]), aliases)}"
    assert (code, lines) == (raised.value.exit_code, [expected])
    return raised.value
