"""The Python API: importing facebatch stays light, its names are the API module's, and the
README's example runs as written (on the fixture files, writing under a temp folder)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import facebatch
from facebatch import api
from tests.conftest import FIXTURES, PROJECT


def readme_example() -> str:
    text = (PROJECT / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_import_facebatch_is_light_and_names_the_api():
    probe = "import sys, facebatch; print([m for m in ('torch', 'onnx', 'onnxruntime', 'cv2') if m in sys.modules])"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
    assert list(facebatch.API) == api.__all__ and set(api.__all__) <= set(dir(facebatch))
    assert all(hasattr(api, name) for name in facebatch.API)  # every listed name is really offered
    assert facebatch.verify_model is api.verify_model and callable(facebatch.open_pipeline)
    for name in api.__all__:
        assert getattr(api, name).__doc__, f"facebatch.{name} has no docstring"


@pytest.mark.slow  # the README's pipeline, in a process of its own
def test_the_readme_example_runs(models_dir: Path, tmp_path: Path):
    code = (
        readme_example().replace('"../shared/fixtures"', repr(str(FIXTURES))).replace('"build/api', f'"{tmp_path}/api')
    )
    code = code.replace('f"build/api', f'f"{tmp_path}/api')
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["obama_1.jpg"].startswith("1 (1, 128)") and lines["two_people.jpg"].startswith("2 (2, 128)")
    assert done.stderr == "", "the library printed something nobody asked for"


def test_the_library_is_silent_unless_asked(tmp_path: Path, models_dir: Path):
    """No handler, no output: a program embedding facebatch routes or silences it through logging."""
    code = (
        f"import facebatch; fixed = facebatch.fix({str(models_dir / 'det_500m.onnx')!r}, {str(tmp_path / 'd.onnx')!r}, size=(64, 64)); "
        "facebatch.verify_model(fixed.path, batch_sizes=(1, 2), sizes=[(64, 64)])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr[-2000:]
    shown = "import logging, facebatch; logging.basicConfig(level=logging.INFO); " + code.split("; ", 1)[1].replace(
        "d.onnx", "e.onnx"
    )
    done = subprocess.run([sys.executable, "-c", shown], cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "INFO:facebatch.progress:✓" in done.stderr
