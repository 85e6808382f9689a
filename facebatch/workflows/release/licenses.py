"""The licence of every artifact a release publishes: known before any work (an unknown one is refused
unless the caller states it), then recorded per released file in the manifest and the model card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facebatch.configs.license import License, given_license, license_of, license_of_weights
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError
from facebatch.workflows.release.options import ReleaseOptions


def check_licenses(options: ReleaseOptions) -> License | None:
    """Before any work: every artifact to take and every model to export has weights of a known licence,
    or the caller stated one (``options.license``, returned, which then applies to those of unknown
    licence only: a stated licence never replaces a known one)."""
    given = given_license(options.license) if options.license is not None else None
    if given is not None:
        return given
    for path in options.artifacts:
        if not license_of(read_model_file(Path(path))).known:
            raise _unknown(Path(path).name)
    for request in options.models:
        weights = request.weights
        kind = "seeded" if weights is None else "checkpoint"
        sha256 = file_sha256(Path(weights)) if weights is not None and Path(weights).is_file() else None
        if not license_of_weights(kind, str(weights) if weights else None, sha256).known:
            raise _unknown(Path(weights or "").name)
    return None


def _unknown(name: str) -> SpecError:
    return SpecError(
        f"{name}: the licence of its weights is unknown (not InsightFace's, not seeded); a release states every "
        "artifact's licence: give it as license, an SPDX id such as Apache-2.0 or the licence's name",
        field="license",
    )


def released_licenses(models: Sequence[ModelFile], staging: Path, given: License | None) -> dict[str, License]:
    """Each released file (path relative to the release) → its licence: its own; else that of the file it
    was made from inside the release (a twin of a file taken as it is); else the one the caller stated."""
    by_name = {m.path.name: m for m in models}
    found: dict[str, License] = {}
    for model in models:
        license = license_of(model)
        recorded = model.recorded_source
        if not license.known and recorded is not None and recorded.name in by_name:
            license = license_of(by_name[recorded.name])
        if not license.known and given is not None:
            license = given
        found[str(model.path.relative_to(staging))] = license
    return found
