"""The status of a check or a gate, one vocabulary for verify, release and the reports: a check
passed, failed, was skipped (it could have run and did not, saying why) or does not apply."""

from __future__ import annotations

PASS, FAIL, SKIP, NA = "pass", "fail", "skip", "n/a"
