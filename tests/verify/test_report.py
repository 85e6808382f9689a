"""The report is the one source of truth: its verdict comes from the checks, strict mode
fails skipped (not inapplicable) checks, and the JSON, Markdown and JUnit say the same."""

import json
import xml.etree.ElementTree as ET

from facebatch.core.environment import environment
from facebatch.verify.report import FAIL, NA, PASS, SKIP, CheckResult, VerifyReport


def report(*statuses: str, strict: bool = False, sizes=("320x320",)) -> VerifyReport:
    checks = [
        CheckResult(i + 1, f"check {i + 1}", status, f"summary {i + 1}", [f"detail {i + 1}"])
        for i, status in enumerate(statuses)
    ]
    return VerifyReport(
        "m.onnx",
        "abc",
        "scrfd",
        "facebatch metadata",
        "input.1 [batch, 3, 320, 320]",
        list(sizes),
        ["t1.jpg", "noise (seed 0)"],
        {"batch_sizes": [1, 2]},
        "facebatch verify m.onnx",
        strict,
        checks=checks,
        environment=environment(),
    )


def test_the_verdict_is_derived_from_the_checks():
    assert report(PASS, NA, SKIP).passed
    assert not report(PASS, FAIL).passed
    assert not report().passed  # no check ran: nothing was proven
    strict = report(PASS, NA, SKIP, strict=True)
    assert not strict.passed and strict.gate_failures() == [
        "3. check 3 skipped (summary 3); strict fails skipped checks"
    ]
    assert report(PASS, NA, strict=True).passed  # n/a is not a skip
    assert report(PASS, NA, strict=True).refusal() is None
    failed = report(PASS, FAIL, SKIP, strict=True).refusal()  # the error of a failed verdict, about strict
    assert failed is not None and failed.exit_code == 1 and failed.field == "strict"
    assert report(PASS, FAIL, SKIP).refusal().field is None  # not strict: the skip is no reason
    assert (
        report(PASS, FAIL, SKIP, strict=True).failure_line()
        == "m.onnx fails check(s) 2 check 2; skipped under strict: 3 check 3 (summary 3)"
    )


def test_json_says_what_the_report_says():
    data = json.loads(report(PASS, SKIP, strict=True).to_json())
    assert data["passed"] is False and data["strict"] is True and data["gate_failures"]
    assert data["frames"] == ["t1.jpg", "noise (seed 0)"] and data["options"] == {"batch_sizes": [1, 2]}
    assert data["command"] == "facebatch verify m.onnx" and data["environment"]["packages"]["onnx"]


def test_markdown_shows_the_environment_frames_and_command():
    text = report(PASS, FAIL).to_markdown()
    assert "| 2 | check 2 | FAIL | summary 2 |" in text and "## 2. check 2" in text
    assert "- 0: t1.jpg" in text and "- command: `facebatch verify m.onnx`" in text
    environment_block = text.split("## Environment")[1]
    assert "facebatch " in environment_block and "onnxruntime " in environment_block and "Python " in environment_block
    several = report(PASS, sizes=("320x320", "320x480"))
    several.checks[0].size = (320, 480)
    assert (
        "| 1 | check 1 | 320x480 | PASS |" in several.to_markdown()
        and several.checks[0].label == "1. check 1 @ 320x480"
    )


def test_junit_fails_strict_skips_and_marks_inapplicable_checks():
    suite = ET.fromstring(report(PASS, NA, SKIP, FAIL, strict=True).to_junit()).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {c.get("name"): c for c in suite}
    assert cases["2. check 2"].find("skipped").get("message") == "not applicable: summary 2"
    assert cases["3. check 3"].find("failure").get("message").startswith("skipped, and strict fails skipped checks")
    lenient = ET.fromstring(report(PASS, SKIP).to_junit()).find("testsuite")
    assert (lenient.get("failures"), lenient.get("skipped")) == ("0", "1")
