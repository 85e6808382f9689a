"""The performance gate of a release: this bench against an earlier one (its JSON), batch size
by batch size on the same backend. A cell slower by more than ``max_slowdown`` fails.

Timings only compare on the same kind of machine: when the CPU model, its core count or the
GPUs differ, the gate is not applied and says why, rather than failing or passing blindly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.errors import SpecError
from facebatch.engines.bench.report import BenchReport

DEFAULT_MAX_SLOWDOWN = 0.10


@dataclass(frozen=True)
class Slowdown:
    artifact: str
    backend: str
    batch: int
    old_fps: float
    new_fps: float

    @property
    def change(self) -> float:
        """Relative change of FPS: -0.2 is 20 % slower."""
        return self.new_fps / self.old_fps - 1.0

    def describe(self) -> str:
        return f"{self.artifact} on {self.backend} at batch {self.batch}: {self.old_fps:.1f} → {self.new_fps:.1f} FPS ({self.change:+.0%})"


@dataclass
class RegressionCheck:
    baseline: str
    max_slowdown: float
    applied: bool
    reason: str = ""  # why not applied
    compared: int = 0  # cells found in both
    slower: list[Slowdown] = field(default_factory=list)  # past the margin
    changes: list[Slowdown] = field(default_factory=list)  # every compared cell

    @property
    def passed(self) -> bool:
        """Not applied passes (and says why); applied, it needs cells to compare and none slower."""
        return not self.applied or (self.compared > 0 and not self.slower)

    def summary(self) -> str:
        if not self.applied:
            return f"not applied: {self.reason}"
        if not self.compared:
            return f"nothing in common with {self.baseline} (no artifact, backend and batch size in both)"
        if self.slower:
            return f"{len(self.slower)} of {self.compared} cells slower than {self.baseline} by more than {self.max_slowdown:.0%}"
        worst = min(self.changes, key=lambda s: s.change)
        return f"{self.compared} cells within {self.max_slowdown:.0%} of {self.baseline} (worst {worst.change:+.0%})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "max_slowdown": self.max_slowdown,
            "applied": self.applied,
            "reason": self.reason,
            "compared": self.compared,
            "passed": self.passed,
            "slower": [s.__dict__ | {"change": s.change} for s in self.slower],
            "changes": [s.__dict__ | {"change": s.change} for s in self.changes],
        }


def _machine(environment: dict[str, Any]) -> dict[str, Any]:
    return {
        "cpu": environment.get("cpu"),
        "physical_cores": environment.get("physical_cores"),
        "gpus": sorted(g.get("name", "") for g in environment.get("gpus") or []),
    }


def read_bench_json(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"baseline_bench {path} does not exist", field="baseline_bench") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"baseline_bench {path} is not a readable bench JSON ({exc})", field="baseline_bench") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise SpecError(f"baseline_bench {path} is not a bench report's JSON (it has no runs)", field="baseline_bench")
    return data


def compare_with_baseline(
    new: BenchReport, baseline: dict[str, Any], name: str, max_slowdown: float = DEFAULT_MAX_SLOWDOWN
) -> RegressionCheck:
    if not 0 < max_slowdown < 1:
        raise SpecError(f"max_slowdown must be between 0 and 1, got {max_slowdown}", field="max_slowdown")
    old_machine, new_machine = _machine(baseline.get("environment", {})), _machine(new.environment)
    if old_machine != new_machine:
        differ = [
            f"{key} {old_machine[key]} vs {new_machine[key]}"
            for key in old_machine
            if old_machine[key] != new_machine[key]
        ]
        return RegressionCheck(name, max_slowdown, False, "the machines differ (" + "; ".join(differ) + ")")
    old = {
        (run["artifact"], run["backend"], t["batch"]): float(t["fps"])
        for run in baseline["runs"]
        for t in run.get("timings", [])
    }
    check = RegressionCheck(name, max_slowdown, True)
    for run in new.runs:
        for timing in run.timings:
            key = (run.artifact, run.backend, timing.batch)
            if key in old:
                cell = Slowdown(run.artifact, run.backend, timing.batch, old[key], timing.fps)
                check.changes.append(cell)
                if cell.change < -max_slowdown:
                    check.slower.append(cell)
    check.compared = len(check.changes)
    return check
