"""The verify report: one ``CheckResult`` per check, rendered as a terminal table, JSON,
Markdown and JUnit XML (one testcase per check, so CI dashboards show which one failed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class CheckResult:
    number: int
    name: str
    status: str  # pass | fail | skip
    summary: str
    details: list[str] = field(default_factory=list)  # one line each, for the reader
    data: dict[str, Any] = field(default_factory=dict)  # everything, for machines

    @property
    def failed(self) -> bool:
        return self.status == FAIL


@dataclass
class VerifyReport:
    model: str
    sha256: str
    family: str
    spec_source: str
    input: str
    notes: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not any(c.failed for c in self.checks)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# facebatch verify: `{self.model}` — **{self.verdict}**",
            "",
            f"- family: {self.family} (spec from {self.spec_source}); input `{self.input}`",
            f"- sha256: `{self.sha256}`",
            f"- took {self.seconds:.1f} s",
        ]
        lines += [f"- note: {n}" for n in self.notes]
        lines += ["", "| # | check | result | summary |", "|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.number} | {c.name} | {c.status.upper()} | {c.summary.replace('|', '/')} |")
        for c in self.checks:
            if c.details:
                lines += ["", f"## {c.number}. {c.name}", ""] + [f"- {d}" for d in c.details]
        env = ", ".join(f"{k} {v}" for k, v in self.environment.get("versions", {}).items())
        if env:
            lines += ["", f"Environment: {env}"]
        return "\n".join(lines) + "\n"

    def to_junit(self) -> str:
        failures = sum(c.failed for c in self.checks)
        skipped = sum(c.status == SKIP for c in self.checks)
        suite = ET.Element(
            "testsuite", name=f"facebatch verify {self.model}", tests=str(len(self.checks)),
            failures=str(failures), errors="0", skipped=str(skipped), time=f"{self.seconds:.3f}",
        )  # fmt: skip
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"facebatch.verify.{self.model}", name=f"{c.number}. {c.name}")
            if c.failed:
                failure = ET.SubElement(case, "failure", message=c.summary)
                failure.text = "\n".join(c.details)
            elif c.status == SKIP:
                ET.SubElement(case, "skipped", message=c.summary)
            else:
                ET.SubElement(case, "system-out").text = "\n".join([c.summary, *c.details])
        suites = ET.Element("testsuites")
        suites.append(suite)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
