"""The verify report: one ``CheckResult`` per check (per input size for the checks that run
the model), rendered as JSON, Markdown and JUnit XML (one testcase per check, so CI
dashboards show which one failed).

Statuses: ``pass``, ``fail``, ``skip`` (the check could have run but did not: no reference
given, no face in any frame) and ``n/a`` (it does not apply: an embedder has no decode step,
nothing mixed so nothing to localise). ``passed`` is derived from the checks, the one source
of truth; in strict mode (the release gate) a skipped check fails it too, with its reason.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from facebatch.core.environment import describe_environment
from facebatch.core.errors import VerificationFailed
from facebatch.core.junit import JUnitCase, junit_suite
from facebatch.core.status import FAIL, NA, PASS, SKIP  # noqa: F401 - re-exported for the checks


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass
class CheckResult:
    number: int
    name: str
    status: str  # pass | fail | skip | n/a
    summary: str
    details: list[str] = field(default_factory=list)  # one line each, for the reader
    data: dict[str, Any] = field(default_factory=dict)  # everything, for machines
    size: tuple[int, int] | None = None  # the input size it ran at, when several were checked

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def label(self) -> str:
        at = f" @ {size_text(self.size)}" if self.size else ""
        return f"{self.number}. {self.name}{at}"


@dataclass
class VerifyReport:
    model: str
    sha256: str
    family: str
    spec_source: str
    input: str
    sizes: list[str] = field(default_factory=list)  # input sizes checked, e.g. ["320x320", "320x480"]
    frames: list[str] = field(default_factory=list)  # frame index → the photo (or noise seed) it is
    options: dict[str, Any] = field(default_factory=dict)  # what the checks ran with
    command: str | None = None  # the command line, when the CLI made the report
    strict: bool = False  # skipped checks fail the gate
    notes: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    precision: str = "fp32"  # what the graph computes in: its tolerances follow it

    def gate_failures(self) -> list[str]:
        """Why the gate fails, one line per check: failed checks, and in strict mode skipped ones."""
        lines = [f"{c.label} failed" for c in self.checks if c.failed]
        if self.strict:
            lines += [
                f"{c.label} skipped ({c.summary}); strict fails skipped checks" for c in self.checks if c.status == SKIP
            ]
        return lines

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.gate_failures()

    def failure_line(self) -> str:
        """Why the gate failed, in one line (the CLI's error line)."""

        def named(c: CheckResult) -> str:
            return f"{c.number} {c.name}" + (f" @ {size_text(c.size)}" if c.size else "")

        failed = [named(c) for c in self.checks if c.failed]
        parts = [f"fails check(s) {', '.join(failed)}"] if failed else []
        if self.strict:
            skipped = [f"{named(c)} ({c.summary})" for c in self.checks if c.status == SKIP]
            if skipped:
                parts.append(f"skipped under strict: {'; '.join(skipped)}")
        if not self.checks:
            parts.append("ran no check")
        return f"{self.model} " + "; ".join(parts)

    def refusal(self) -> VerificationFailed | None:
        """The error of a failing verdict, for callers that stop on one (None when the gate passed); about
        the ``strict`` field when it failed for a skipped check."""
        if self.passed:
            return None
        skipped = self.strict and any(c.status == SKIP for c in self.checks)
        return VerificationFailed(self.failure_line(), field="strict" if skipped else None)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed, "gate_failures": self.gate_failures()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def proof_record(self) -> dict[str, Any]:
        """This verify as the proof in an artifact's sidecar: the verdict and each check in one line."""
        return {
            "passed": self.passed,
            "strict": self.strict,
            "reference": "verify against the source",
            "checks": [{"check": c.label, "status": c.status, "summary": c.summary} for c in self.checks],
        }

    def to_markdown(self) -> str:
        mode = " (strict: skipped checks fail)" if self.strict else ""
        lines = [
            f"# facebatch verify: `{self.model}` — **{self.verdict}**{mode}",
            "",
            f"- family: {self.family} (spec from {self.spec_source}); precision {self.precision}; input `{self.input}`",
            f"- sha256: `{self.sha256}`",
            f"- checked at {', '.join(self.sizes)}; took {self.seconds:.1f} s",
        ]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        lines += [f"- note: {n}" for n in self.notes]
        lines += [f"- gate: {line}" for line in self.gate_failures()]
        several = len(self.sizes) > 1
        lines += [
            "",
            "| # | check |" + (" size |" if several else "") + " result | summary |",
            "|---|---|" + ("---|" if several else "") + "---|---|",
        ]
        for c in self.checks:
            size = f" {size_text(c.size) if c.size else 'all'} |" if several else ""
            lines.append(f"| {c.number} | {c.name} |{size} {c.status.upper()} | {c.summary.replace('|', '/')} |")
        for c in self.checks:
            if c.details:
                lines += ["", f"## {c.label}", ""] + [f"- {d}" for d in c.details]
        if self.frames:
            lines += ["", "## Frames", ""] + [f"- {i}: {source}" for i, source in enumerate(self.frames)]
        environment = describe_environment(self.environment)
        if environment:
            lines += ["", "## Environment", ""] + [f"- {line}" for line in environment]
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        cases = []
        for c in self.checks:
            if c.status == SKIP and self.strict:
                cases.append(JUnitCase(c.label, FAIL, f"skipped, and strict fails skipped checks: {c.summary}"))
            elif c.status == NA:
                cases.append(JUnitCase(c.label, NA, f"not applicable: {c.summary}"))
            else:
                cases.append(JUnitCase(c.label, FAIL if c.failed else c.status, c.summary, "\n".join(c.details)))
        return junit_suite(
            f"facebatch verify {self.model}", cases, self.seconds, classname=f"facebatch.verify.{self.model}"
        )
