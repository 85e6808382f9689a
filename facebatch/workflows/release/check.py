"""``facebatch release --check``: a release folder re-verified later, every hash and every artifact."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.precision import Precision
from facebatch.environment import file_sha256, int8_cpu_class
from facebatch.errors import FacebatchError, SpecError
from facebatch.exporter.torch_reference import TORCH
from facebatch.progress import step
from facebatch.verify.verify_job import VerifyOptions, verify_model
from facebatch.workflows.quantize import recheck_int8
from facebatch.workflows.release.gates import reference_for
from facebatch.workflows.release.manifest import MANIFEST


@dataclass
class CheckResult:
    path: Path
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)  # artifacts that no longer pass verify
    verified: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.missing or self.changed or self.failing)

    def problems(self) -> list[str]:
        return (
            [f"missing: {m}" for m in self.missing]
            + [f"changed (sha256 or size): {c}" for c in self.changed]
            + [f"fails verify: {f}" for f in self.failing]
        )


def check_release(folder: Path, photos: Sequence[Path] = ()) -> CheckResult:
    """Every file's hash and size against the manifest, then every artifact through verify
    --strict (FP32 against torch, FP16 against the FP32 source beside it)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise SpecError(f"{folder} holds no {MANIFEST}; is it a facebatch release folder?")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SpecError(f"{manifest_path} is unreadable; the release cannot be checked") from None
    result = CheckResult(folder)
    for rel, record in files.items():
        path = folder / rel
        if not path.is_file():
            result.missing.append(rel)
        elif path.stat().st_size != record["size"] or file_sha256(path) != record["sha256"]:
            result.changed.append(rel)
    references = manifest.get("references", {})
    for rel in manifest.get("artifacts", []):
        path = folder / rel
        if rel in result.missing or rel in result.changed:
            continue
        unjudged = _made_on_another_cpu(read_model_file(path))
        if unjudged and not photos:  # its verify would fail for want of faces; say what is needed
            result.failing.append(f"{rel} ({unjudged}: pass --images to re-check its accuracy here)")
            continue
        try:
            with step(f"verify {rel}"):
                given = references.get(rel)
                reference = reference_for(
                    read_model_file(path),
                    None if given is None else given if given == TORCH else folder / given,
                    [folder / "onnx", folder / "references"],
                )
                report = verify_model(path, VerifyOptions(photos=list(photos), reference=reference, strict=True))
        except FacebatchError as exc:  # e.g. its FP32 reference was tampered with
            result.failing.append(f"{rel} ({exc})")
            continue
        if not report.passed:
            result.failing.append(f"{rel} ({report.failure_line()})")
            continue
        problem = _recheck_int8_here(folder, manifest.get("artifacts", []), read_model_file(path), photos)
        (result.failing if problem else result.verified).append(f"{rel} ({problem})" if problem else rel)
    return result


def _made_on_another_cpu(target: ModelFile) -> str | None:
    """'quantised on a vnni CPU, this one is avx2' for an INT8 file gated on another CPU class, else None."""
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    return None if made_on is None or made_on == here else f"quantised on a {made_on} CPU, this one is {here}"


def _recheck_int8_here(folder: Path, artifacts: Sequence[str], target: ModelFile, photos: Sequence[Path]) -> str | None:
    """An INT8 file made on another CPU class gets its accuracy gate again, here; what failed, or None."""
    if _made_on_another_cpu(target) is None:
        return None
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    detectors = [
        folder / rel
        for rel in artifacts
        if rel.endswith(".onnx")
        and read_model_file(folder / rel).spec.head is not None
        and read_model_file(folder / rel).spec.precision is Precision.FP32
    ]
    with step(f"re-check {target.path.name}'s INT8 accuracy on this {here} CPU (made on {made_on})"):
        _, failures = recheck_int8(target.path, photos, detectors[0] if detectors else None)
    return f"its INT8 accuracy gate fails on this {here} CPU: {'; '.join(failures)}" if failures else None
