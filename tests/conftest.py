"""Shared fixtures: the real files in ../shared/fixtures (never copied into the project).
Tests that need them skip with a reason when that folder is absent; under CI (``CI`` set) its
absence fails the run at once, since a CI run that skipped them would prove nothing.
``FACEBATCH_SHARED`` points elsewhere than ../shared.

The tiers: a test is ``slow`` when it uses a fixture declared slow (``@slow_fixture``: it exports a model
from torch, starts a Triton server or a Ray cluster), directly or through another fixture, or when it says
so itself (``@pytest.mark.slow``: it exports a model, or runs facebatch in a process of its own). ``make
test-fast`` runs the others (``-m "not slow"``), ``make test`` all. The promise is held where the work starts:
a test left fast that exports a model from torch or starts ``python -m facebatch`` fails, saying to mark it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEBATCH_SHARED", PROJECT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
REFERENCE = SHARED / "reference"
# compiled OpenVINO models (engines/runners/compile_cache.py) go to a folder of this test session, never the user's
# cache; set here, before any test, so that facebatch processes the tests start inherit it
# (each pytest-xdist worker makes its own: its conftest runs once per process); removed when the session ends
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="facebatch-tests-cache-")
os.environ["FACEBATCH_CACHE_DIR"] = TEST_CACHE_DIR
# Tests of one file share a worker under pytest-xdist (their module fixtures are made once); the files in one of these
# groups share one worker too, because what they start cannot run twice at once on one machine
SHARED_WORKER = {
    "ray": ("tests/engines/gallery/test_ray_",),  # Ray instances and clusters of the same machine, /tmp/ray
}


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
    from facebatch.engines.pipeline.photo_files import image_files

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


SLOW_FIXTURES: dict[str, str] = {}  # fixture name → what makes it slow
Fixture = TypeVar("Fixture", bound=Callable)


def slow_fixture(why: str) -> Callable[[Fixture], Fixture]:
    """Declare the fixture below slow (``why``: it exports a model, starts a server or a cluster): every test that
    uses it, directly or through another fixture, is marked ``slow``. Goes under ``@pytest.fixture``."""

    def declare(fixture: Fixture) -> Fixture:
        SLOW_FIXTURES[fixture.__name__] = why
        return fixture

    return declare


def mark_slow(items: list[pytest.Item]) -> None:
    for item in items:
        uses = [name for name in getattr(item, "fixturenames", ()) if name in SLOW_FIXTURES]
        if uses:
            item.add_marker(pytest.mark.slow(reason=f"{uses[0]}: {SLOW_FIXTURES[uses[0]]}"))


def runs_facebatch(argv: object) -> bool:
    """``argv`` starts the ``facebatch`` command line (``python -m facebatch …``, or through tests/data/tripwire.py)."""
    words = [str(word) for word in argv] if isinstance(argv, list | tuple) else str(argv).split()
    return any(a == "-m" and b == "facebatch" for a, b in zip(words, words[1:], strict=False)) or any(
        word.endswith("tests/data/tripwire.py") for word in words
    )


_RUNNING: list[pytest.Item] = []  # the test being set up, run or torn down (its fixtures' work counts as its own)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    _RUNNING[:] = [item]
    guard_the_fast_tier()  # torch may have been imported since (the command line imports it when a command runs)


def worker_group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((group for group, starts in SHARED_WORKER.items() if path.startswith(starts)), path)


def refuse_in_a_fast_test(what: str) -> None:
    """Fail the running test, unless it is slow: the fast tier's promise, held where the work starts."""
    if _RUNNING and _RUNNING[0].get_closest_marker("slow") is None:
        pytest.fail(
            f"{_RUNNING[0].nodeid} {what}, and is not marked slow: mark it (@pytest.mark.slow), "
            "or declare the fixture that does it slow (@slow_fixture)",
            pytrace=False,
        )


def guard_the_fast_tier() -> None:
    """A test not marked slow that exports a model from torch or runs facebatch in a process of its own fails at
    that moment (before the export or the process starts), saying what to mark."""
    start = subprocess.Popen.__init__
    if not hasattr(start, "guarded"):

        def guarded_start(self: subprocess.Popen, args: object, *more: object, **options: object) -> None:
            if runs_facebatch(args):
                refuse_in_a_fast_test("runs facebatch in a process of its own")
            start(self, args, *more, **options)

        guarded_start.guarded = True  # type: ignore[attr-defined]
        subprocess.Popen.__init__ = guarded_start  # type: ignore[method-assign]
    if "torch" not in sys.modules:
        return  # nothing imported torch yet: nothing can export
    import torch.onnx as onnx

    if not hasattr(onnx.export, "guarded"):
        export = onnx.export

        def guarded_export(*args: object, **kwargs: object) -> object:
            refuse_in_a_fast_test("exports a model from torch")
            return export(*args, **kwargs)

        guarded_export.guarded = True  # type: ignore[attr-defined]
        onnx.export = guarded_export


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``gpu`` runs where what it names is here (``@pytest.mark.gpu("tensorrt")``; no name: a CUDA GPU),
    and skips with the reason elsewhere; never gated on torch's CUDA unless it names torch-cuda. A test that uses a
    slow fixture is marked ``slow``. Each test gets its pytest-xdist group (``--dist loadgroup``): its file's, or
    the shared one its file is in."""
    mark_slow(items)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(worker_group(item.nodeid)))
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
@slow_fixture("exports SCRFD-500M from torch")
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
@slow_fixture("exports SCRFD-2.5G from torch")
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
@slow_fixture("runs Triton's python backend")
def serve_env():
    """The python environment Triton's python models run in: $FACEBATCH_SERVE_ENV or
    .venv-serve ('make serve-env', which 'make test' runs first)."""
    import os

    from facebatch.engines.triton.install import python_env

    prefix = Path(os.environ.get("FACEBATCH_SERVE_ENV", SERVE_ENV))
    if not (prefix / "bin" / "python3").exists():
        pytest.skip(f"{prefix} is absent: 'make serve-env' makes the python backend's environment (make test does)")
    return python_env(prefix)
