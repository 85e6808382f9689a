"""scripts/gpu_check.py (make gpu-check) without a GPU: it refuses in one line, its dry run names
every step it would run with the commands as they would run, the device folder is named as
docs/benchmarks/ names them, and a wheel folder brings pure-Python packages only. Its real run
needs a GPU; '--cpu' rehearses every step on a machine without one."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT

SCRIPT = PROJECT / "scripts" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is here: the refusal does not apply")
def test_without_a_gpu_it_refuses_in_one_line(tmp_path: Path):
    done = run("--out", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpu-check: error: no CUDA GPU here (nvidia-smi is missing or lists none): run make gpu-check on a machine with one"
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_dry_run_names_every_step_with_its_command(tmp_path: Path, models_dir: Path):
    done = run("--dry-run", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    steps = [line.split(" (", 1)[1].split(",")[0] for line in done.stdout.splitlines() if line.startswith("would run")]
    assert steps == [
        "gpu tests",
        "export scrfd_10g_bnkps",
        "export arcface_r50",
        "bench scrfd_10g_bnkps",
        "bench arcface_r50",
        "pipeline detector",
        "pipeline embedder",
        "pipeline on ort-cpu",
    ]
    assert "-m pytest -m gpu" in done.stdout and "--batch-sizes 1,2,4,8,16,32" in done.stdout
    assert f"export --weights {models_dir / 'det_2.5g.onnx'} --size 640" in done.stdout
    assert (tmp_path / "no-gpu-dry-run" / "environment.json").is_file()


def test_devices_are_named_as_docs_benchmarks_names_them_and_only_pure_wheels_travel(tmp_path: Path):
    script = load_script()
    assert script.device_slug("NVIDIA H100 80GB HBM3") == "gpu_nvidia-h100-80gb-hbm3"
    assert script.device_slug("NVIDIA H200") == "gpu_nvidia-h200"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "tiny-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("tiny/__init__.py", "VALUE = 7\n")
        wheel.writestr("tiny-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tiny\nVersion: 1.0\n")
    site = tmp_path / "site"
    assert script.unpack_wheels(wheels, site) == ["tiny-1.0-py3-none-any.whl"]
    assert (site / "tiny" / "__init__.py").read_text() == "VALUE = 7\n"
    (wheels / "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")
    with pytest.raises(script.CheckFailed, match="not a pure-Python wheel"):
        script.unpack_wheels(wheels, site)
