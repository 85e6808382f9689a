"""The one runner factory: backends by name, what is missing said up front (for a machine stated as
data, so that no test changes meaning where GPU packages are installed), the TensorRT profile from
the spec and the FP16 flag per TensorRT version, explicit threads, the runner each backend builds."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.configs.scrfd import released_head_layout, scrfd_spec
from facebatch.core.environment import physical_cores
from facebatch.core.errors import SpecError
from facebatch.engines.runners.availability import CPU, CUDA, TENSORRT_EP, Runtimes
from facebatch.engines.runners.backends import BACKENDS, parse_backends
from facebatch.engines.runners.factory import (
    RunnerOptions,
    _trt_options,
    backend_problem,
    check_backend,
    make_onnx_runner,
    ort_trt_precision,
)


def test_backend_names_are_checked_and_deduplicated():
    assert parse_backends("ort-cpu, openvino,ort-cpu") == ("ort-cpu", "openvino")
    with pytest.raises(SpecError, match="unknown backend 'openvno'; did you mean openvino\\?"):
        parse_backends("openvno")
    assert set(BACKENDS) == {"ort-cpu", "ort-cuda", "ort-trt", "openvino", "torch", "trt"}
    # the Python API gives a sequence, or the command line's string: each is read as names, never as letters
    assert parse_backends(["ort-cpu", "openvino, ort-cpu"]) == ("ort-cpu", "openvino")
    with pytest.raises(SpecError, match="unknown backend 'o'") as refused:
        parse_backends(tuple("ort-cpu"), "bench_backends")  # what tuple("ort-cpu") made of a string before
    assert refused.value.field == "bench_backends"
    with pytest.raises(SpecError, match="bench_backends: expected backend names, got"):
        parse_backends([1, 2], "bench_backends")  # type: ignore[list-item]


def test_the_tensorrt_profile_comes_from_the_spec():
    spec = scrfd_spec("scrfd_10g_bnkps", released_head_layout(True), 320, 320, dynamic_size=True)
    options = _trt_options(spec, (320, 480), RunnerOptions(trt_cache=Path("/tmp/cache")))
    assert options["trt_profile_min_shapes"] == "input.1:1x3x320x480"
    assert (
        options["trt_profile_opt_shapes"] == "input.1:16x3x320x480"
        and options["trt_profile_max_shapes"] == "input.1:32x3x320x480"
    )
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_path"] == "/tmp/cache"


def test_tensorrt_11_gets_no_fp16_flag_and_the_precision_says_what_runs():
    """TensorRT ≥ 11 builds as typed: the FP16 flag only for TensorRT 10 on an FP32 graph; the label tells."""
    fp32 = scrfd_spec("scrfd_500m_bnkps", released_head_layout(True), 64, 64)
    fp16, options = fp32.at_fp16(), RunnerOptions()
    assert _trt_options(fp32, (64, 64), options, "10.13.3")["trt_fp16_enable"] is True
    assert ort_trt_precision(fp32, options, "10.13.3") == "fp16 (TensorRT)"
    assert _trt_options(fp32, (64, 64), options, "11.4.0")["trt_fp16_enable"] is False
    assert ort_trt_precision(fp32, options, "11.4.0").startswith("fp32 (TensorRT 11.4.0 builds as typed")
    assert _trt_options(fp16, (64, 64), options, "11.4.0")["trt_fp16_enable"] is False
    assert (
        ort_trt_precision(fp16, options, "11.4.0")
        == ort_trt_precision(fp16, options, None)
        == "fp16 (TensorRT, as typed)"
    )
    assert ort_trt_precision(fp32, RunnerOptions(trt_fp16=False), "10.13.3") == "fp32 (TensorRT)"


GPU_WHEEL_ON_A_CPU_MACHINE = Runtimes(
    onnxruntime={"onnxruntime-gpu": "1.31.1"}, ort_providers=(TENSORRT_EP, CUDA, CPU), polygraphy="0.53.6"
)
GPU_MACHINE_WITHOUT_CUDNN = Runtimes(
    onnxruntime={"onnxruntime-gpu": "1.31.1"},
    ort_providers=(TENSORRT_EP, CUDA, CPU),
    cuda_devices=("NVIDIA H200",),
    provider_errors={CUDA: "libcudnn.so.9: cannot open shared object file: No such file or directory"},
    tensorrt="11.4.0",
    polygraphy="0.53.6",
)


@pytest.mark.parametrize(
    ("backend", "machine", "message"),
    [
        (
            "ort-cuda",
            Runtimes.cpu_only(),
            "ort-cuda needs onnxruntime's CUDAExecutionProvider, which this installation lacks: pip install 'facebatch[gpu]'",
        ),
        (
            "ort-trt",
            Runtimes.cpu_only(),
            "ort-trt needs onnxruntime's TensorrtExecutionProvider, which this installation lacks",
        ),
        (
            "ort-cuda",
            GPU_WHEEL_ON_A_CPU_MACHINE,
            "ort-cuda cannot start here: CUDAExecutionProvider needs a CUDA GPU, and nvidia-smi sees none here",
        ),
        (
            "ort-cuda",
            GPU_MACHINE_WITHOUT_CUDNN,
            "onnxruntime cannot load libonnxruntime_providers_cuda.so (libcudnn.so.9: cannot open shared object file: No such file or directory): it needs CUDA 12 and cuDNN 9",
        ),
        (
            "trt",
            Runtimes.cpu_only(),
            "the trt backend runs TensorRT engines, and TensorRT and Polygraphy are not installed here",
        ),
        (
            "trt",
            GPU_WHEEL_ON_A_CPU_MACHINE,
            "the trt backend runs TensorRT engines, and TensorRT is not installed here",
        ),
        (
            "trt",
            replace(GPU_MACHINE_WITHOUT_CUDNN, cuda_devices=()),
            "and TensorRT needs a CUDA GPU, and nvidia-smi sees none here",
        ),
    ],
)
def test_each_machine_gets_the_reason_its_backend_cannot_run(backend: str, machine: Runtimes, message: str):
    assert message in backend_problem(backend, machine)
    with pytest.raises(SpecError, match=re.escape(message)):
        check_backend(backend, RunnerOptions(runtimes=machine))


def test_what_can_run_is_not_refused():
    assert backend_problem("ort-cpu", Runtimes.cpu_only()) is None
    assert backend_problem("trt", GPU_MACHINE_WITHOUT_CUDNN) is None  # TensorRT itself needs no cuDNN
    assert backend_problem("ort-trt", GPU_MACHINE_WITHOUT_CUDNN) is None


def test_what_cannot_run_is_refused_before_any_work(small_detector: Path):
    cpu_only = RunnerOptions(runtimes=Runtimes.cpu_only())
    with pytest.raises(SpecError, match="ort-trt needs onnxruntime's TensorrtExecutionProvider"):
        check_backend("ort-trt", cpu_only)
    check_backend(
        "ort-trt", RunnerOptions(allow_fallback=True, runtimes=Runtimes.cpu_only())
    )  # the runner says what ran
    with pytest.raises(SpecError, match="backend torch does not run ONNX files directly") as refused:
        make_onnx_runner("torch", read_model_file(small_detector), (64, 64), RunnerOptions())
    assert refused.value.field == "backend"
    assert RunnerOptions().thread_count == physical_cores() and RunnerOptions(threads=3).thread_count == 3


def test_each_runner_names_the_precision_its_file_runs_in(small_detector: Path):
    """An INT8 (QDQ) file runs on integer kernels on onnxruntime's CPU provider and on OpenVINO alike:
    both say int8 (bench sets INT8 cells against the CPU's integer ceiling, not its FP32 peak)."""
    fp32 = scrfd_spec("scrfd_500m_bnkps", released_head_layout(True), 64, 64)
    int8, fp16 = replace(fp32, precision=Precision.INT8), fp32.at_fp16()
    expected = {
        (fp32, "ort-cpu"): "fp32",
        (fp32, "openvino"): "fp32",
        (int8, "ort-cpu"): "int8",
        (int8, "openvino"): "int8",
        (fp16, "openvino"): "fp16 weights, f32 compute",
    }
    model = read_model_file(small_detector)
    for (spec, backend), precision in expected.items():
        runner = make_onnx_runner(backend, replace(model, spec=spec), (64, 64), RunnerOptions())
        named = (
            runner.precision_by_provider.get("CPUExecutionProvider", runner.graph_precision)
            if backend == "ort-cpu"
            else runner.precision
        )
        assert named == precision, (spec.precision, backend)


def test_a_missing_gpu_provider_advises_the_cpu_backend_as_a_field_not_a_flag():
    """The library speaks Python: the advice is the backend every caller chooses (the CLI names its flag); it
    used to be ``allow_fallback``, which only bench offers (detect, index and the rest printed it as it was)."""
    with pytest.raises(SpecError) as refused:
        check_backend("ort-cuda", RunnerOptions(runtimes=Runtimes.cpu_only()))
    assert refused.value.field == "backend"
    assert str(refused.value).endswith("; or run on the CPU: backend ort-cpu")
    assert "--" not in str(refused.value) and str(refused.value).index("backend ort-cpu") == str(refused.value).index(
        "backend"
    )  # its first "backend" is the advice: the CLI names that one as its flag


def test_the_factory_builds_the_runner_of_each_onnx_backend(small_detector: Path):
    model = read_model_file(small_detector)
    with make_onnx_runner("ort-cpu", model, (64, 64), RunnerOptions(threads=1)) as runner:
        assert runner.provider == CPU and runner.threads == 1
        frames = np.zeros((2, 3, 64, 64), np.float32)
        assert all(len(output) == 2 for output in runner.infer({"input.1": frames}).values())
    fallen_back = make_onnx_runner(
        "ort-cuda", model, (64, 64), RunnerOptions(allow_fallback=True, runtimes=Runtimes.cpu_only())
    )
    assert fallen_back.providers == (CPU,)  # allowed: the CPU starts quietly, the runner says what ran
