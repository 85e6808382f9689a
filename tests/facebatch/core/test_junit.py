"""JUnit merging: every suite kept, the totals summed, gates as test cases."""

import xml.etree.ElementTree as ET

from facebatch.core.junit import gates_suite, merge_junit


def test_suites_are_merged_and_counted():
    one = '<?xml version="1.0"?><testsuites><testsuite name="a" tests="2" failures="1" errors="0" skipped="0"/></testsuites>'
    gates = gates_suite(
        "release x", [("export", "pass", "ok"), ("engines", "skip", "no TensorRT"), ("bench", "fail", "slower")]
    )
    root = ET.fromstring(merge_junit([one, gates]))
    assert [s.get("name") for s in root] == ["a", "release x"]
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "2", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["bench"].find("failure").get("message") == "slower" and cases["engines"].find("skipped") is not None
