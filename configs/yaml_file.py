"""Reading the YAML files users give facebatch (embedder specs, published tables): a missing
file or a syntax error is one line saying which file, and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from facebatch.core.errors import SpecError


def read_yaml(path: Path, role: str) -> Any:
    """``role`` names the file in messages, e.g. "embedder spec"."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{role} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise SpecError(f"{role} {path} is not valid YAML{line}") from exc
