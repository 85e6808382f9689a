"""Prose that names code names what is there: every file path (``engines/gallery/store.py``) and every dotted
``facebatch.…`` name in README.md, ARCHITECTURE.md, the export instructions and docs/ exists, so a module that
moves or a function that is renamed cannot leave the documents pointing at nothing."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from facebatch.core.progress import logger, notes_logger, progress_logger
from tests.conftest import PROJECT

DOCUMENTS = [
    PROJECT / "README.md",
    PROJECT / "ARCHITECTURE.md",
    PROJECT / "SCRFD_320_EXPORT_INSTRUCTIONS.md",
    *sorted((PROJECT / "docs").rglob("*.md")),
]
FILE_PATH = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+\.(?:py|md|yaml|yml|toml))`")
DOTTED = re.compile(r"`(facebatch(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
LOGGERS = {logger.name, progress_logger.name, notes_logger.name}  # logging names, not modules


def resolves(name: str) -> bool:
    """Whether ``name`` is a module, or an attribute path below the longest module it starts with."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(PROJECT)))
def test_named_files_and_names_exist(document: Path):
    text = document.read_text()
    missing_files = [p for p in FILE_PATH.findall(text) if not (PROJECT / p).exists()]
    missing_names = [n for n in DOTTED.findall(text) if n not in LOGGERS and not resolves(n)]
    assert (missing_files, missing_names) == ([], [])


def test_the_check_catches_a_stale_name():
    assert resolves("facebatch.core.atomic.durable_replace")
    assert not resolves("facebatch.core.atomic.no_such_function")
    assert (
        not FILE_PATH.findall("`engines/gallery/no_such_module.py`") or not (PROJECT / "engines/gallery/x.py").exists()
    )


def test_the_readme_stays_a_readme():
    """The README is where a newcomer starts: its two set-up commands, then the way in; details live in docs/."""
    readme = (PROJECT / "README.md").read_text()
    assert len(readme.encode()) <= 12_000, "move details to docs/ (README ≤ 12 KB)"
    first = [line for line in readme.splitlines()[:6] if line.startswith("make ")]
    assert [line.split("#")[0].strip() for line in first] == ["make export verify bench", "make test"]
