"""Without ../shared/fixtures the suite skips what needs them, with the reason; under CI that absence fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"FACEBATCH_SHARED": str(tmp_path / "no_shared")}
    if ci is not None:
        env["CI"] = ci
    test = "tests/exporter/weights/test_scrfd_import.py::test_face_embedder_is_not_an_scrfd"  # needs the fixture models
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_fixtures_skip_with_a_reason_outside_ci(tmp_path: Path):
    done = run_pytest(tmp_path, None)
    assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
    done = run_pytest(tmp_path, "false")
    assert done.returncode == 0 and "1 skipped" in done.stdout


def test_missing_fixtures_fail_the_run_under_ci(tmp_path: Path):
    done = run_pytest(tmp_path, "true")
    assert (
        done.returncode == 1
        and "CI is set but" in done.stdout + done.stderr
        and "is absent" in done.stdout + done.stderr
    )
