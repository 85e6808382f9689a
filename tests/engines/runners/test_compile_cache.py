"""engines/runners/compile_cache.py with the real OpenVINO and the real embedder (mobilefacenet_128d.onnx): a
compiled model is kept and imported again with the same numbers, a damaged blob is compiled again, a folder
others could write to is not used, and two processes filling one folder at once both run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facebatch.engines.runners.compile_cache import BLOB_SUFFIX, CompileCache, usable_folder
from facebatch.engines.runners.openvino_runner import OpenVinoRunner

pytest.importorskip("openvino")
FRAMES = np.random.default_rng(7).standard_normal((1, 3, 112, 112)).astype(np.float32)


def outputs(model: Path, cache: CompileCache | None) -> np.ndarray:
    with OpenVinoRunner(model, threads=1, cache=cache) as runner:
        return runner.infer({runner.inputs[0].name: FRAMES})[runner.outputs[0].name]


@pytest.fixture
def embedder(models_dir: Path) -> Path:
    return models_dir / "mobilefacenet_128d.onnx"


def test_a_compiled_model_is_kept_and_imported_with_the_same_numbers(embedder: Path, tmp_path: Path):
    uncached = outputs(embedder, None)
    cache = CompileCache(tmp_path)
    first = outputs(embedder, cache)
    assert cache.hit is False and len(list(tmp_path.glob(f"*{BLOB_SUFFIX}"))) == 1
    again = outputs(embedder, cache)
    assert cache.hit is True and len(list(tmp_path.glob(f"*{BLOB_SUFFIX}"))) == 1
    # the import runs what was compiled: f32, not the bf16 an import without the precision hint would run
    assert np.array_equal(first, uncached) and np.array_equal(again, uncached)
    assert oct(next(tmp_path.glob("*.blob")).stat().st_mode & 0o777) == "0o600"


def test_a_damaged_blob_is_compiled_again_and_replaced(embedder: Path, tmp_path: Path):
    cache = CompileCache(tmp_path)
    reference = outputs(embedder, cache)
    blob = next(tmp_path.glob(f"*{BLOB_SUFFIX}"))
    whole = blob.read_bytes()
    blob.write_bytes(whole[: len(whole) // 3])  # what a reader of a half-written blob would see
    assert np.array_equal(outputs(embedder, cache), reference) and cache.hit is False
    assert np.array_equal(outputs(embedder, cache), reference) and cache.hit is True  # kept whole, imported again
    blob.unlink()
    blob.symlink_to(tmp_path / "elsewhere.blob")  # never read through a link
    (tmp_path / "elsewhere.blob").write_bytes(whole)
    assert np.array_equal(outputs(embedder, cache), reference) and cache.hit is False and not blob.is_symlink()


def test_a_folder_others_may_write_to_or_a_link_is_not_used(tmp_path: Path, caplog):
    open_to_all = tmp_path / "shared"
    open_to_all.mkdir(mode=0o777)
    os.chmod(open_to_all, 0o777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real").mkdir(mode=0o700)
    with caplog.at_level("WARNING", logger="facebatch"):
        assert usable_folder(open_to_all) is None and usable_folder(link) is None
    warned = [record.getMessage() for record in caplog.records]
    assert any("others may write to it" in w for w in warned) and any("not a plain folder" in w for w in warned)
    made = tmp_path / "new" / "cache"
    assert usable_folder(made) == made and oct(made.stat().st_mode & 0o777) == "0o700"


@pytest.mark.slow  # two python processes of their own
def test_two_processes_filling_one_folder_at_once_both_run(embedder: Path, tmp_path: Path):
    script = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from facebatch.engines.runners.compile_cache import CompileCache\n"
        "from facebatch.engines.runners.openvino_runner import OpenVinoRunner\n"
        "x = np.random.default_rng(7).standard_normal((1, 3, 112, 112)).astype(np.float32)\n"
        "with OpenVinoRunner(Path(sys.argv[1]), threads=1, cache=CompileCache(Path(sys.argv[2]))) as r:\n"
        "    np.save(sys.argv[3], r.infer({r.inputs[0].name: x})[r.outputs[0].name])\n"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(embedder), str(tmp_path), str(tmp_path / f"{i}.npy")])
        for i in range(2)
    ]
    assert [run.wait(120) for run in runs] == [0, 0]
    blobs = list(tmp_path.glob(f"*{BLOB_SUFFIX}"))
    assert len(blobs) == 1 and not list(tmp_path.glob(".*.tmp"))  # one whole blob, no temporary left
    cache = CompileCache(tmp_path)
    assert np.array_equal(outputs(embedder, cache), np.load(tmp_path / "0.npy")) and cache.hit is True
    assert np.array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))


def test_the_pipeline_keeps_its_compiled_detector_unless_told_not_to(
    models_dir: Path, photos: list[Path], tmp_path, monkeypatch
):
    from facebatch.cli import main

    detector = models_dir / "det_500m.onnx"
    for flags, folder in ((["--no-cache"], tmp_path / "no_cache"), ([], tmp_path / "cache")):
        monkeypatch.setenv("FACEBATCH_CACHE_DIR", str(folder))
        argv = ["detect", str(photos[0]), "--detector", str(detector), "--backend", "openvino", *flags]
        assert main(argv) == 0
    assert (
        not list((tmp_path / "no_cache").glob(f"*{BLOB_SUFFIX}"))
        and len(list((tmp_path / "cache").glob(f"*{BLOB_SUFFIX}"))) == 1
    )
