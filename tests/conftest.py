"""Shared fixtures: the real files in ../shared/fixtures (never copied into the project).
Tests that need them skip with a reason when that folder is absent; under CI (``CI`` set) its
absence fails the run at once, since a CI run that skipped them would prove nothing.
``FACEBATCH_SHARED`` points elsewhere than ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEBATCH_SHARED", PROJECT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REFERENCE = SHARED / "reference"


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_sessionstart(session: pytest.Session) -> None:
    if under_ci() and not FIXTURES.is_dir():
        pytest.exit(
            f"CI is set but {FIXTURES} is absent: the tests with real fixtures would all skip; "
            "check out ../shared beside the project (or set FACEBATCH_SHARED)",
            returncode=1,
        )


def _require(path: Path) -> Path:
    if not path.exists():
        if under_ci():
            pytest.fail(f"{path} is absent under CI (tests with real fixtures need ../shared beside the project)")
        pytest.skip(f"{path} is absent (tests with real fixtures need ../shared beside the project)")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _require(FIXTURES / "models")


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    from facebatch.engines.pipeline.preprocess import image_files

    return image_files(_require(FIXTURES / "images"))


@pytest.fixture(scope="session")
def keys_dir() -> Path:
    return _require(REFERENCE / "scrfd_keys")


def torch_cuda_problem() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU (a CPU build, or no GPU here)"
    return None


def gpu_problem(need: str) -> str | None:
    """Why a gpu test's need is not met here, or None. The needs a test names in ``@pytest.mark.gpu(...)``:
    cuda (a GPU nvidia-smi sees), torch-cuda, ort-cuda and ort-trt (onnxruntime's provider can start: listed,
    with a GPU and its libraries), tensorrt (TensorRT and Polygraphy importable, with a GPU)."""
    from facebatch.engines.runners.availability import CUDA, TENSORRT_EP, detect_runtimes

    here = detect_runtimes()
    if need == "cuda":
        return None if here.cuda_devices else "no CUDA GPU here (nvidia-smi sees none)"
    if need == "torch-cuda":
        return torch_cuda_problem()
    if need in ("ort-cuda", "ort-trt"):
        return here.provider_problem(CUDA if need == "ort-cuda" else TENSORRT_EP)
    if need == "tensorrt":
        return here.tensorrt_problem()
    raise ValueError(f"unknown gpu need {need!r}: cuda, torch-cuda, ort-cuda, ort-trt or tensorrt")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``gpu`` runs where what it names is here (``@pytest.mark.gpu("tensorrt")``; no name: a CUDA GPU),
    and skips with the reason elsewhere; never gated on torch's CUDA unless it names torch-cuda."""
    problems: dict[str, str | None] = {}
    for item in items:
        needs = [need for marker in item.iter_markers("gpu") for need in (marker.args or ("cuda",))]
        for need in needs:
            if need not in problems:
                problems[need] = gpu_problem(need)
            if problems[need]:
                item.add_marker(pytest.mark.skip(reason=f"needs {need}: {problems[need]}"))
                break


@pytest.fixture(scope="session")
def small_detector(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SCRFD-500M weights (from det_500m.onnx) re-exported at 64×64: a real artifact
    of ours, small enough to run and time in a blink."""
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    out = tmp_path_factory.mktemp("small_detector")
    request = ScrfdExportRequest(
        weights=models_dir / "det_500m.onnx", height=64, width=64, out_dir=out, parity_batch_sizes=(1, 2)
    )
    return export_scrfd(request).onnx_path


@pytest.fixture(scope="session")
def real_detector(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SCRFD-2.5G weights (det_2.5g.onnx) re-exported by us at 640×640, batch 1–32:
    what the face pipeline is tested with (insightface's detection size)."""
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    out = tmp_path_factory.mktemp("real_detector")
    request = ScrfdExportRequest(
        weights=models_dir / "det_2.5g.onnx", height=640, width=640, out_dir=out, parity_batch_sizes=(1, 2)
    )
    return export_scrfd(request).onnx_path


@pytest.fixture(scope="session")
def batch_embedder(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mobilefacenet_128d.onnx (a real 128-d embedder, batch fixed to 1) repaired by
    ``facebatch fix`` to take any batch."""
    from facebatch.workflows.fix import fix_onnx

    out = tmp_path_factory.mktemp("batch_embedder") / "mobilefacenet_128d_batch.onnx"
    return fix_onnx(models_dir / "mobilefacenet_128d.onnx", out).path


SERVE_ENV = PROJECT / ".venv-serve"  # 'make serve-env': the python backend's environment (numpy<2)


@pytest.fixture(scope="session")
def serve_env():
    """The python environment Triton's python models run in: $FACEBATCH_SERVE_ENV or
    .venv-serve ('make serve-env', which 'make test' runs first)."""
    import os

    from facebatch.engines.triton.server import python_env

    prefix = Path(os.environ.get("FACEBATCH_SERVE_ENV", SERVE_ENV))
    if not (prefix / "bin" / "python3").exists():
        pytest.skip(f"{prefix} is absent: 'make serve-env' makes the python backend's environment (make test does)")
    return python_env(prefix)
