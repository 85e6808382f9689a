"""What this machine can run on: exactly one onnxruntime (a mix is refused in one line that names
the fix, end to end through the command line), providers judged by whether they can start, and
the machine read here as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from facebatch.engines.runners.availability import (
    CPU,
    CUDA,
    TENSORRT_EP,
    Runtimes,
    detect_runtimes,
    installed_onnxruntimes,
    onnxruntime_install_problem,
)
from tests.conftest import PROJECT


def test_one_onnxruntime_is_fine_and_none_or_two_are_refused_naming_the_fix():
    assert onnxruntime_install_problem({"onnxruntime": "1.32.0"}) is None
    assert onnxruntime_install_problem({"onnxruntime-gpu": "1.31.1"}) is None
    mixed = onnxruntime_install_problem({"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.31.1"})
    assert mixed == (
        "2 onnxruntime packages are installed (onnxruntime 1.32.0, onnxruntime-gpu 1.31.1) and overwrite each other's "
        "files: pip uninstall -y onnxruntime onnxruntime-gpu, then pip install 'facebatch[cpu]' (onnxruntime) or "
        "'facebatch[gpu]' (onnxruntime-gpu), not both"
    )
    assert onnxruntime_install_problem({}).startswith("onnxruntime is not installed: pip install 'facebatch[cpu]'")


def test_this_environment_has_exactly_one_onnxruntime_and_lists_what_it_has():
    here = detect_runtimes()
    (name,) = installed_onnxruntimes()
    assert here.onnxruntime == installed_onnxruntimes() and CPU in here.ort_providers
    if name == "onnxruntime-gpu":  # the gpu extra: the CUDA provider is listed, whether or not a GPU is here
        assert CUDA in here.ort_providers
    assert here.provider_problem(CPU) is None


def test_a_listed_provider_without_a_gpu_or_its_libraries_cannot_start():
    listed = Runtimes(onnxruntime={"onnxruntime-gpu": "1.31.1"}, ort_providers=(TENSORRT_EP, CUDA, CPU))
    assert listed.provider_problem(CUDA) == "CUDAExecutionProvider needs a CUDA GPU, and nvidia-smi sees none here"
    with_gpu = Runtimes(
        onnxruntime={"onnxruntime-gpu": "1.31.1"},
        ort_providers=(CUDA, CPU),
        cuda_devices=("NVIDIA H200",),
        provider_errors={CUDA: "libcublasLt.so.12: cannot open shared object file"},
    )
    assert with_gpu.provider_problem(CUDA).startswith("onnxruntime cannot load libonnxruntime_providers_cuda.so")
    assert (
        with_gpu.provider_problem(TENSORRT_EP) == "this onnxruntime (onnxruntime-gpu) lacks TensorrtExecutionProvider"
    )
    assert Runtimes(cuda_devices=("NVIDIA H200",), tensorrt="11.4.0", polygraphy="0.53.6").tensorrt_problem() is None
    assert Runtimes(tensorrt="11.4.0", polygraphy="0.53.6").tensorrt_problem().startswith("TensorRT needs a CUDA GPU")


def test_a_mixed_install_is_refused_in_one_line_before_any_work(small_detector: Path, tmp_path: Path):
    """A second onnxruntime distribution on the path (its metadata is what pip leaves; its files would overwrite
    the first's): the command stops at once with the one line, exit 2, no traceback, nothing written."""
    site = tmp_path / "site"
    other = "onnxruntime_gpu" if "onnxruntime" in installed_onnxruntimes() else "onnxruntime"
    info = site / f"{other}-1.31.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {other.replace('_', '-')}\nVersion: 1.31.1\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "facebatch", "verify", str(small_detector), "--json", str(out / "v.json")],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("facebatch: error: 2 onnxruntime packages are installed (") and "pip uninstall -y" in line
    assert not out.exists()
