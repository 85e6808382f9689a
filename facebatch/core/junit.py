"""JUnit XML for CI systems: several reports' test suites merged into one file, and a suite
built from named gates (a release's)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from facebatch.core.status import FAIL, NA, SKIP


def merge_junit(documents: Iterable[str]) -> str:
    """One ``<testsuites>`` holding every ``<testsuite>`` of ``documents`` (each a JUnit XML text)."""
    merged = ET.Element("testsuites")
    for text in documents:
        root = ET.fromstring(text)
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        merged.extend(suites)
    totals = {key: sum(int(s.get(key, "0")) for s in merged) for key in ("tests", "failures", "errors", "skipped")}
    for key, value in totals.items():
        merged.set(key, str(value))
    return ET.tostring(merged, encoding="unicode", xml_declaration=True) + "\n"


@dataclass(frozen=True)
class JUnitCase:
    """One test case: a check or a gate, its status (facebatch.core.status), a one-line message and details."""

    name: str
    status: str
    message: str
    details: str = ""


def junit_suite(name: str, cases: Sequence[JUnitCase], seconds: float = 0.0, classname: str | None = None) -> str:
    """One ``<testsuites>`` with one ``<testsuite>``: the one JUnit writer (verify's checks, a release's gates).
    A failed case is a ``<failure>``, a skipped or not applicable one ``<skipped>``."""
    failures = sum(c.status == FAIL for c in cases)
    skipped = sum(c.status in (SKIP, NA) for c in cases)
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{seconds:.3f}",
    )
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=classname or name.replace(" ", "."), name=c.name)
        if c.status == FAIL:
            ET.SubElement(case, "failure", message=c.message).text = c.details or None
        elif c.status in (SKIP, NA):
            ET.SubElement(case, "skipped", message=c.message)
        else:
            ET.SubElement(case, "system-out").text = "\n".join(filter(None, [c.message, c.details]))
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def gates_suite(name: str, gates: Sequence[tuple[str, str, str]], seconds: float = 0.0) -> str:
    """A suite of (gate, status, summary)."""
    return junit_suite(name, [JUnitCase(gate, status, summary) for gate, status, summary in gates], seconds)
