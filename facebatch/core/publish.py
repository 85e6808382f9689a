"""Prove, then publish: the one way every command that writes an artifact writes it (export,
convert, quantize, build, fix).

    with draft(target, "out") as candidate:      # a private folder beside the target
        write candidate.path                      # the artifact under its final name: reports name it
        prove it (parity, verify, accuracy)       # leaving the block without publishing writes nothing
        publish(candidate, "facebatch convert --fp16", body, source=…, proof=…)

``publish`` computes the artifact's sha256, writes its sidecar ``<name>.json`` (one header for
every tool: artifact, sha256, size, what made it, facebatch version, created, source and its
sha256, proof, environment; then the tool's own fields) in the same folder, and renames the
artifact over the target, then the sidecar over its own: two renames on one filesystem.

What a crash leaves, at each point (tests/facebatch/test_publish.py kills the process at each):

* before the first rename: the target and its sidecar untouched; the private folder
  ``.<name>.draft-<pid>-…`` stays behind (a killed process cannot clean up) and the next draft of
  the same target removes it once that process is gone, saying so (``facebatch.core.leftovers``);
* between the renames: the new artifact beside the old sidecar (or none); every sidecar names
  the sha256 of the file it describes, so ``sidecar_of`` and every reader see it is not this
  file's and ignore it;
* after both: the new artifact and its sidecar.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from facebatch.core.atomic import check_output_file, durable_replace, file_mode
from facebatch.core.environment import environment, file_sha256
from facebatch.core.leftovers import private_folder
from facebatch.core.version import __version__

DRAFT_MARK = ".draft-"
# The points between the steps of a publish; ``crash_point`` is called at each (a test kills the process there).
DRAFTED, ARTIFACT_RENAMED, PUBLISHED = "drafted", "artifact renamed", "published"
HEADER_KEYS = ("artifact", "sha256", "size", "made_by", "facebatch", "created", "source", "proof", "environment")


def crash_point(step: str) -> None:
    """Nothing: the seam where tests/facebatch/test_publish.py kills the process between steps."""


@dataclass(frozen=True)
class Draft:
    """A candidate artifact being made: ``path`` in a private folder, under the target's name."""

    target: Path
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / self.target.name

    @property
    def sidecar_target(self) -> Path:
        return sidecar_path(self.target)


@dataclass(frozen=True)
class Published:
    path: Path
    sidecar: Path
    record: dict[str, Any]  # the sidecar as written

    @property
    def sha256(self) -> str:
        return self.record["sha256"]


def sidecar_path(artifact: Path) -> Path:
    """Where an artifact's sidecar lives: beside it, ``.json`` for its suffix."""
    return Path(artifact).with_suffix(".json")


@contextlib.contextmanager
def draft(target: Path, field: str = "out", inputs: Iterable[Path] = ()) -> Iterator[Draft]:
    """A private folder beside ``target`` for its candidate (and any scratch files); removed on
    leaving, whatever happened. ``field`` names the option that chose ``target``, for the error
    when it is a folder, one of the ``inputs`` or in a folder that is not writable (workflows
    call ``check_output_file`` before their work too: this is the backstop)."""
    target = check_output_file(Path(target), field, inputs)
    folder = private_folder(target.parent, f".{target.name}{DRAFT_MARK}")  # removes those killed runs left
    try:
        yield Draft(target, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sidecar_record(
    artifact: Path,
    made_by: str,
    body: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
    proof: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar of ``artifact``: the common header, then ``body`` (which may not restate it)."""
    restated = sorted(set(body) & set(HEADER_KEYS))
    if restated:
        raise ValueError(f"a sidecar body may not restate its header: {', '.join(restated)}")
    header = {
        "artifact": artifact.name,
        "sha256": file_sha256(artifact),
        "size": artifact.stat().st_size,
        "made_by": made_by,
        "facebatch": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": dict(source) if source is not None else None,
        "proof": dict(proof) if proof is not None else None,
        "environment": environment(),
    }
    return header | dict(body)


def publish(
    candidate: Draft,
    made_by: str,
    body: Mapping[str, Any],
    source: Mapping[str, Any] | None = None,
    proof: Mapping[str, Any] | None = None,
) -> Published:
    """Write the proven candidate's sidecar, then rename the artifact and the sidecar into place."""
    record = sidecar_record(candidate.path, made_by, body, source, proof)
    staged_sidecar = candidate.folder / candidate.sidecar_target.name
    if staged_sidecar == candidate.path:
        raise ValueError(f"{candidate.target.name}: an artifact cannot be named like its sidecar")
    staged_sidecar.write_text(json.dumps(record, indent=2, default=str) + "\n")
    for path in (candidate.path, staged_sidecar):
        os.chmod(path, file_mode())
    crash_point(DRAFTED)
    durable_replace(candidate.path, candidate.target)
    crash_point(ARTIFACT_RENAMED)
    durable_replace(staged_sidecar, candidate.sidecar_target)
    crash_point(PUBLISHED)
    return Published(candidate.target, candidate.sidecar_target, record)


def sidecar_of(artifact: Path, sha256: str | None = None) -> dict[str, Any] | None:
    """The sidecar beside ``artifact`` when it describes exactly this file (its sha256, hashed here
    unless the caller knows it); None when there is none, it is unreadable, or it belongs to another
    version of the file."""
    path = sidecar_path(artifact)
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not Path(artifact).is_file():
        return None
    if data.get("sha256") != (sha256 or file_sha256(Path(artifact))):
        return None
    return data
