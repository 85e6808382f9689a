"""JUnit XML for CI systems: several reports' test suites merged into one file, and a suite
built from named gates (a release's)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence


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


def gates_suite(name: str, gates: Sequence[tuple[str, str, str]], seconds: float = 0.0) -> str:
    """A suite of (gate, status, summary) with status pass, fail or skip."""
    failures = sum(status == "fail" for _, status, _ in gates)
    skipped = sum(status == "skip" for _, status, _ in gates)
    suite = ET.Element("testsuite", name=name, tests=str(len(gates)), failures=str(failures), errors="0", skipped=str(skipped),
                       time=f"{seconds:.3f}")  # fmt: skip
    for gate, status, summary in gates:
        case = ET.SubElement(suite, "testcase", classname=name.replace(" ", "."), name=gate)
        if status == "fail":
            ET.SubElement(case, "failure", message=summary)
        elif status == "skip":
            ET.SubElement(case, "skipped", message=summary)
        else:
            ET.SubElement(case, "system-out").text = summary
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
