"""What a release folder says about itself: MANIFEST.json (sha256 and size of every file, versions, environment, gates)
and SUMMARY.md."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from facebatch.configs.license import License
from facebatch.core.environment import environment, file_sha256, git_commit
from facebatch.core.status import FAIL
from facebatch.core.version import __version__
from facebatch.exporter.torch_reference import TORCH
from facebatch.workflows.release.gates import Gate, ReleaseStaging
from facebatch.workflows.release.options import ReleaseOptions

MANIFEST = "MANIFEST.json"
SUMMARY = "SUMMARY.md"
JUNIT = "junit.xml"
FAILED_SUFFIX = ".failed"


@dataclass
class ReleaseResult:
    name: str
    version: str
    path: Path  # the release folder (or the .failed one)
    gates: list[Gate] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path → sha256, size
    seconds: float = 0.0
    manifest_sha256: str = ""  # of the MANIFEST.json written: kept outside the folder, it anchors a later --check

    @property
    def passed(self) -> bool:
        return not any(g.status == FAIL for g in self.gates)

    @property
    def failed_gates(self) -> list[str]:
        return [g.name for g in self.gates if g.status == FAIL]

    def last_line(self) -> str:
        return "RELEASE PASS" if self.passed else f"RELEASE FAIL: {', '.join(self.failed_gates)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "passed": self.passed,
            "result": self.last_line(),
            "gates": [g.to_dict() for g in self.gates],
            "files": self.files,
            "manifest_sha256": self.manifest_sha256,
            "seconds": self.seconds,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        """The gates and the verdict (the folder's SUMMARY.md says more: artifacts, throughput, the baseline)."""
        lines = [f"# Release {self.name} {self.version}", "", f"**{self.last_line()}**", ""]
        lines += ["| gate | result | summary |", "|---|---|---|"]
        lines += [f"| {g.name} | {g.status.upper()} | {g.summary.replace('|', '/')} |" for g in self.gates]
        lines += ["", f"{self.path} ({len(self.files)} files); {MANIFEST} sha256 {self.manifest_sha256}"]
        return "\n".join(lines) + "\n"


def summary_markdown(result: ReleaseResult, release: ReleaseStaging) -> str:
    lines = [f"# Release {result.name} {result.version}", ""]
    seeded = [p.name for p in release.artifacts if release.model(p).seeded]
    if seeded:
        lines += [
            f"> **Seeded weights: {', '.join(seeded)} hold random weights.** They find and recognise nothing; this "
            "release checks the pipeline and measures speed, and is not for deployment.",
            "",
        ]
    lines += [f"**{result.last_line()}**", "", "| gate | result | summary |", "|---|---|---|"]
    lines += [f"| {g.name} | {g.status.upper()} | {g.summary.replace('|', '/')} |" for g in result.gates]
    lines += ["", "## Artifacts", ""] + [f"- `onnx/{p.name}`" for p in release.artifacts + release.fp16 + release.int8]
    if release.bench is not None:
        lines += [
            "",
            "## Throughput (reports/bench.md has every batch size)",
            "",
            "| artifact | backend | batch 1 FPS | best FPS (batch) |",
            "|---|---|---|---|",
        ]
        for run in release.bench.runs:
            one = run.timing(1)
            lines.append(
                f"| {run.artifact} | {run.backend} | {one.fps:.1f} | {run.best().fps:.1f} ({run.best().batch}) |"
                if one
                else f"| {run.artifact} | {run.backend} | – | {run.best().fps:.1f} ({run.best().batch}) |"
            )
    if release.regression is not None:
        lines += ["", "## Performance against the baseline", "", f"- {release.regression.summary()}"]
        lines += [f"- slower: {s.describe()}" for s in release.regression.slower]
    lines += [
        "",
        "Reports: `reports/` (JSON, Markdown, JUnit XML per artifact), `junit.xml` (all of them and the gates), "
        "`MANIFEST.json` (sha256 and size of every file).",
        "",
        result.last_line(),
    ]
    return "\n".join(lines) + "\n"


def manifest_record(
    result: ReleaseResult,
    staging: Path,
    options: ReleaseOptions,
    references: Mapping[Path, str | Path],
    licenses: Mapping[str, License] | None = None,
) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[str(path.relative_to(staging))] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    result.files = files
    artifacts = sorted(rel for rel in files if rel.startswith("onnx/") and rel.endswith(".onnx"))
    return {
        "format": "facebatch-release/1",
        "name": result.name,
        "version": result.version,
        "passed": result.passed,
        "result": result.last_line(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "facebatch": __version__,
        "git_commit": git_commit(),
        "gates": [g.to_dict() for g in result.gates],
        "artifacts": artifacts,
        "files": files,
        "environment": environment(),
        "licenses": {name: license.to_dict() for name, license in (licenses or {}).items()},
        "references": {
            str(a.relative_to(staging)): r if r == TORCH else str(Path(r).relative_to(staging))
            for a, r in references.items()
        },
        "options": {
            "models": [m.__dict__ | {"weights": str(m.weights) if m.weights else None} for m in options.models],
            "artifacts": [str(a) for a in options.artifacts],
            "photos": [str(p) for p in options.photos],
            "references": {name: str(r) for name, r in options.references.items()},
            "baseline_bench": str(options.baseline_bench) if options.baseline_bench else None,
            "required": list(options.require),
            "max_slowdown": options.max_slowdown,
            "license": options.license,
        },
    }
