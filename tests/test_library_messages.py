"""The library speaks Python, the CLI speaks flags (ARCHITECTURE.md, "Errors name fields"): no message the
library raises, warns or notes names a command-line flag (``--lanes``) or a ``facebatch`` command; an error
about one input carries its ``field``, and the CLI names the flag (facebatch/cli/errors.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from facebatch.cli import build_parser
from facebatch.cli.errors import error_line
from facebatch.core.errors import SpecError
from tests.conftest import PROJECT
from tests.test_architecture import layer, module_name, source_files

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
COMMANDS = "export|models|verify|fix|convert|quantize|build|bench|detect|embed|compare|index|search|triton|serve|release|describe|card"
COMMAND = re.compile(rf"\bfacebatch ({COMMANDS})\b")
SPEAKERS = {"warn", "note", "warning", "info", "step", "print", "error", "advise"}  # calls whose text a person reads


def _texts(node: ast.AST) -> list[str]:
    """The literal text in an expression: string constants, and each f-string with its replacement fields as
    ``xx`` (so ``f"--{role}"`` reads ``--xx``, a flag made at run time)."""
    texts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    for joined in (n for n in ast.walk(node) if isinstance(n, ast.JoinedStr)):
        texts.append("".join(v.value if isinstance(v, ast.Constant) else "xx" for v in joined.values))
    return texts


def spoken_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of what a module raises, warns, notes or prints."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            found += [(node.lineno, t) for arg in node.exc.args for t in _texts(arg)]
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in SPEAKERS:
                found += [(node.lineno, t) for arg in node.args for t in _texts(arg)]
    return found


def cli_words(source: str) -> list[str]:
    return [
        f"{line}: {text.strip()[:90]}"
        for line, text in spoken_texts(source)
        if FLAG.search(text) or COMMAND.search(text)
    ]


LIBRARY = [p for p in source_files() if layer(module_name(p)) != "cli"]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PROJECT)))
def test_library_messages_name_no_flag_or_command(path: Path):
    assert cli_words(path.read_text()) == []


def test_the_scan_catches_flags_and_commands():
    assert cli_words('raise SpecError(f"--lanes must be at least 1, got {n}")\n')
    assert cli_words("warn(f\"run 'facebatch quantize {path}' here\")\n")
    assert cli_words('raise SpecError(f"lanes must be at least 1, got {n}", field="lanes")\n') == []
    assert cli_words('raise SpecError(f"pass --{role} FILE.onnx")\n')  # a flag made at run time
    assert cli_words('command = ["facebatch", "embed", "--images", str(folder)]\n') == []  # a command line it runs


def test_the_cli_names_the_flag_of_the_field():
    parser = build_parser()
    embed = parser._subparsers._group_actions[0].choices["embed"]
    error = SpecError("lanes must be at least 1, got 0", field="lanes")
    assert error_line(error, embed) == "--lanes must be at least 1, got 0"
    unmentioned = SpecError("is an embedder; pass an SCRFD model", field="detector")
    assert error_line(unmentioned, embed) == "--detector: is an embedder; pass an SCRFD model"
    assert error_line(SpecError("photos: none found", field="photos"), embed, {"photos": "--images"}) == (
        "--images: none found"
    )
    assert error_line(SpecError("plain"), embed) == "plain"


def test_a_field_inside_a_path_stays_a_path():
    parser = build_parser()._subparsers._group_actions[0].choices["index"]
    error = SpecError("out build/out/gallery.json is one of the inputs", field="out")
    assert error_line(error, parser) == "--out build/out/gallery.json is one of the inputs"
    inside = SpecError("cannot write build/out: read-only", field="out")
    assert error_line(inside, parser) == "--out: cannot write build/out: read-only"
