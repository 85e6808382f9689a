"""The test tiers (tests/conftest.py): a test that uses a slow fixture is marked slow, and a test left fast that
exports a model from torch or runs facebatch in a process of its own fails before the export or the process starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import SLOW_FIXTURES, runs_facebatch
from tests.data import tripwire


def test_every_selected_test_that_uses_a_slow_fixture_is_marked_slow(request: pytest.FixtureRequest):
    assert {"small_detector", "real_detector", "serve_env"} <= set(SLOW_FIXTURES)
    unmarked = [
        item.nodeid
        for item in request.session.items
        if set(getattr(item, "fixturenames", ())) & set(SLOW_FIXTURES) and item.get_closest_marker("slow") is None
    ]
    assert unmarked == []


def test_the_command_line_in_a_process_of_its_own_is_recognised():
    assert runs_facebatch([sys.executable, "-m", "facebatch", "export"])
    assert runs_facebatch(tripwire.command(15, "line:… export", "export"))
    assert runs_facebatch(f"{sys.executable} -m facebatch --version")
    assert not runs_facebatch([sys.executable, "-m", "pytest", "-q"])
    assert not runs_facebatch([sys.executable, "-c", "import facebatch"])  # an import, not a command


def test_a_fast_test_that_starts_facebatch_fails_before_the_process_starts(tmp_path: Path):
    with pytest.raises(pytest.fail.Exception, match="runs facebatch in a process of its own, and is not marked slow"):
        subprocess.run([sys.executable, "-m", "facebatch", "--version"], cwd=tmp_path)


def test_a_fast_test_that_exports_fails_before_torch_exports(tmp_path: Path):
    with pytest.raises(pytest.fail.Exception, match="exports a model from torch, and is not marked slow"):
        torch.onnx.export(torch.nn.Identity(), (torch.zeros(1),), str(tmp_path / "x.onnx"), dynamo=False)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow  # what the mark allows
def test_a_slow_test_may_start_facebatch():
    done = subprocess.run([sys.executable, "-m", "facebatch", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("facebatch ")
