"""facebatch build without a GPU: where its engines go (and that the trt backend and a release's
engines/ agree on it). Building and running one is tests/engines/runners/test_tensorrt.py (gpu)."""

from __future__ import annotations

import shutil
from pathlib import Path

from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.engines.runners.availability import Runtimes
from facebatch.engines.runners.engine_record import engine_filename, engine_profile
from facebatch.workflows.build import BuildOptions, engine_path


def test_a_release_puts_its_engines_where_the_trt_backend_looks(small_detector: Path, tmp_path: Path, monkeypatch):
    release = tmp_path / "facebatch-models-1.0"
    (release / "onnx").mkdir(parents=True)
    artifact = release / "onnx" / small_detector.name
    shutil.copyfile(small_detector, artifact)
    model = read_model_file(artifact)
    path = engine_path(model, engine_profile(model.spec), BuildOptions(out_dir=release / "engines"))
    # find_engine looks in engines/ beside the ONNX's folder, for this name
    assert path == artifact.parent.parent / "engines" / engine_filename(artifact.stem, Precision.FP16, model.spec.batch)
    assert path.suffix == ".plan" and path.name.endswith("_fp16_b1-32.plan")

    from facebatch.workflows.release import gates

    asked: list[BuildOptions] = []

    def build_here(plan_source: Path, options: BuildOptions):
        asked.append(options)
        raise gates.FacebatchError("no GPU here")

    # the gate's plumbing, not TensorRT, is tested here: a machine that has TensorRT and a GPU, as data
    machine = Runtimes(tensorrt="11.4.0", polygraphy="0.53.6", cuda_devices=("NVIDIA H200",))
    monkeypatch.setattr(gates, "detect_runtimes", lambda: machine)
    monkeypatch.setattr(gates, "build_engine_job", build_here)
    staging = gates.ReleaseStaging.__new__(gates.ReleaseStaging)
    staging.options, staging.staging, staging.artifacts, staging.gates = _Options(), release, [artifact], []
    gates.engines_gate(staging)
    assert (
        asked[0].out is None and asked[0].out_dir == release / "engines"
    )  # named by engine_filename, not <artifact>.onnx
    assert staging.gates[0].status == "fail" and "no GPU here" in staging.gates[0].summary


class _Options:
    engines = True
    photos: tuple = ()
