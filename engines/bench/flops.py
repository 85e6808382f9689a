"""How much arithmetic a model is, and how much of this CPU's arithmetic a measured speed uses.

``model_flops`` counts the multiply-adds of the compute-bound operators (Conv, ConvTranspose,
Gemm, MatMul) of an ONNX graph at one input size, from shapes inferred at batch 1, as 2 FLOPs each,
as a peak is counted (one FMA is 2 FLOPs). Published counts are mostly multiply-adds: SCRFD-2.5G
is 2.5 G multiply-adds at 640×480, which this counts as 5.1 GFLOPs (6.9 at 640×640). Element-wise
operators, pooling and resizes are left out: they are a few per cent of a conv net and not what
the peak is made of. ``PeakEstimate.share`` sets FLOPs per frame × frames per second against the
CPU's ceiling (``measured_peak``: the nominal FP32 estimate, or the FP32 product measured here where
that is more; the 8-bit product measured for INT8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from facebatch.core.environment import PeakEstimate, estimated_peak, int8_cpu_class
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.onnx_graph import COMPUTE_OPS
from facebatch.core.progress import warn
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeIntermediateRunner, OnnxRuntimeRunner


@dataclass(frozen=True)
class ModelFlops:
    """FLOPs of one frame, at the input size they were counted at."""

    flops: float
    input_size: tuple[int, int]
    kept_fp32: float = 0.0  # of an INT8 file, what its recipe keeps in FP32 (set against the FP32 peak)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _dims(value: onnx.ValueInfoProto) -> list[int] | None:
    shape = value.type.tensor_type.shape
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in shape.dim]
    return dims if dims and all(d > 0 for d in dims) else None


def _run_shapes(model: onnx.ModelProto, source: str, shape: tuple[int, ...], names: list[str]) -> dict[str, list[int]]:
    """The shapes of tensors ``names`` when one zero frame of ``shape`` runs through ``model`` (through
    the runner that returns every intermediate tensor: nothing outside the runners calls a runtime)."""
    element = onnx.helper.tensor_dtype_to_np_dtype(
        next(i for i in model.graph.input if i.name == source).type.tensor_type.elem_type
    )
    with OnnxRuntimeIntermediateRunner(model, label=model.graph.name or "the model counted") as runner:
        values = runner.infer_intermediates({source: np.zeros(shape, element)}, check_inputs=False)
    return {name: list(values[name].shape) for name in names if name in values}


def node_flops(path: Path, input_size: tuple[int, int]) -> dict[str, float]:
    """FLOPs per frame of each counted node of the ONNX file at ``path`` for an [1, C, H, W] input of
    ``input_size``, in graph order, keyed by node name (an unnamed node by its first output)."""
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name: tuple(i.dims) for i in model.graph.initializer}
    (source,) = [i for i in model.graph.input if i.name not in initializers][:1]
    dims = source.type.tensor_type.shape.dim
    channels = dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else 3
    fixed = tuple(d.dim_value if d.HasField("dim_value") else 0 for d in dims[2:4])
    if len(fixed) == 2 and all(fixed) and fixed != tuple(input_size):
        raise SpecError(f"{Path(path).name} takes {fixed[0]}×{fixed[1]} frames only; count it at that size")
    for dim, value in zip(dims, (1, channels, *input_size), strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes = {v.name: _dims(v) for v in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    shapes |= {name: list(d) for name, d in initializers.items()}
    unknown = [
        name
        for node in inferred.graph.node
        if node.op_type in COMPUTE_OPS
        for name in (*node.input[:1], *node.output[:1])
        if shapes.get(name) is None
    ]
    if unknown:  # shapes computed at run time (insightface's Resize of Shape → Gather): one frame through ORT
        shapes |= _run_shapes(inferred, source.name, (1, channels, *input_size), list(dict.fromkeys(unknown)))
    counted: dict[str, float] = {}
    for node in inferred.graph.node:
        flops = 0.0
        out = shapes.get(node.output[0]) if node.output and node.op_type in COMPUTE_OPS else None
        if out is None:
            continue
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1:
            weight = shapes.get(node.input[1])
            if weight is None:
                continue
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            per_output = (
                int(np.prod(weight[1:])) if node.op_type == "Conv" else int(np.prod(weight[2:])) * weight[0] // group
            )
            if node.op_type == "Conv":
                flops += 2.0 * int(np.prod(out)) * per_output
            else:  # each input pixel spreads over kernel × output channels
                source_shape = shapes.get(node.input[0])
                if source_shape is not None:
                    flops += 2.0 * int(np.prod(source_shape)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul") and len(node.input) > 1:
            a = shapes.get(node.input[0])
            if a is not None:
                flops += 2.0 * int(np.prod(out)) * a[-1]
        counted[node.name or node.output[0]] = flops
    return counted


def _kept_fp32_names(path: Path) -> list[str]:
    """The layers an INT8 file's recipe keeps in FP32, as its quantisation metadata names them (the
    input convolutions, or a mixed search's choice); none for any other file."""
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    try:
        kept = json.loads(props.get("quantization", "{}")).get("kept_fp32", [])
    except (ValueError, AttributeError):
        return []
    return [name for name in kept if isinstance(name, str)] if isinstance(kept, list) else []


def model_flops(path: Path, input_size: tuple[int, int]) -> ModelFlops:
    """FLOPs per frame of the ONNX file at ``path`` for an [1, C, H, W] input of ``input_size``, and
    the part of them an INT8 file keeps in FP32."""
    per_node = node_flops(path, input_size)
    kept = sum(per_node.get(name, 0.0) for name in _kept_fp32_names(path))
    return ModelFlops(sum(per_node.values()), input_size, kept)


def flops_per_frame(path: Path, input_size: tuple[int, int]) -> ModelFlops | None:
    """``model_flops`` for a report: None, with a warning, where the graph cannot be counted (the
    benchmark itself goes on)."""
    try:
        return model_flops(path, input_size)
    except FacebatchError as exc:
        warn(f"{Path(path).name}: its FLOPs per frame are not counted, so no share of the CPU's peak is given ({exc})")
        return None


GEMM_SIZE = 1024  # a matrix product this size runs at onnxruntime's full FP32 rate here (~10 ms a call on 2 cores)


def gemm_model(n: int = GEMM_SIZE, int8_weights: str | None = None) -> onnx.ModelProto:
    """[n, n] @ a constant [n, n]: the most arithmetic a runtime can do per second, in FP32 (MatMul), or
    with ``int8_weights`` ("int8" or "uint8") as an 8-bit integer product of uint8 inputs (MatMulInteger)."""
    rng = np.random.default_rng(0)
    if int8_weights is None:
        weight, source, op, result = (
            rng.random((n, n), dtype=np.float32),
            onnx.TensorProto.FLOAT,
            "MatMul",
            onnx.TensorProto.FLOAT,
        )
    else:
        weight = (
            rng.integers(-100, 100, (n, n)).astype(np.int8)
            if int8_weights == "int8"
            else rng.integers(0, 200, (n, n)).astype(np.uint8)
        )
        source, op, result = onnx.TensorProto.UINT8, "MatMulInteger", onnx.TensorProto.INT32
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ["x", "weight"], ["y"])],
        "gemm_probe",
        [onnx.helper.make_tensor_value_info("x", source, [n, n])],
        [onnx.helper.make_tensor_value_info("y", result, [n, n])],
        [onnx.numpy_helper.from_array(weight, "weight")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def gemm_operations(n: int = GEMM_SIZE) -> float:
    """What one probe call computes: an [n, n] @ [n, n] product is n³ multiply-adds, 2 operations each
    (as a peak counts one FMA)."""
    return 2.0 * n**3


def measured_gemm(threads: int, int8_weights: str | None = None, calls: int = 5) -> float:
    """Operations per second (2 per multiply-add) of onnxruntime's matrix product at ``threads`` intra-op
    threads, FP32 or 8-bit (``gemm_model``); the best of ``calls`` after one warm-up: the ceiling, not a
    typical figure."""
    rng = np.random.default_rng(1)
    shape = (GEMM_SIZE, GEMM_SIZE)
    x = rng.random(shape, dtype=np.float32) if int8_weights is None else rng.integers(0, 255, shape).astype(np.uint8)
    with OnnxRuntimeRunner(gemm_model(GEMM_SIZE, int8_weights), intra_op_threads=threads, spin_wait=False) as runner:
        runner.infer({"x": x})
        seconds = []
        for _ in range(calls):
            runner.infer({"x": x})
            seconds.append(runner.last_inference_seconds)
    return gemm_operations(GEMM_SIZE) / min(seconds)


def measured_bf16_gemm(threads: int, calls: int = 5) -> float | None:
    """Operations per second (2 per multiply-add) of OpenVINO's FP32 matrix product computed in bfloat16
    (``INFERENCE_PRECISION_HINT=bf16``) at ``threads``, the best of ``calls`` after one warm-up: the ceiling a
    model running in BF16 is set against, measured like the 8-bit one. None where it cannot run (no OpenVINO,
    no BF16: the cell then has no share rather than a guessed one)."""
    import tempfile

    from facebatch.engines.runners.openvino_runner import OpenVinoRunner, detect_openvino_cpu

    if not detect_openvino_cpu().bf16:
        return None
    x = np.random.default_rng(1).random((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gemm_probe.onnx"
        onnx.save(gemm_model(GEMM_SIZE), str(path))
        with OpenVinoRunner(path, threads=threads, precision="bf16") as runner:
            runner.infer({"x": x})
            seconds = []
            for _ in range(calls):
                runner.infer({"x": x})
                seconds.append(runner.last_inference_seconds)
    return gemm_operations(GEMM_SIZE) / min(seconds)


# the 8-bit product each CPU class's INT8 recipes run on (int8_recipes: u8s8 where VNNI is, u8u8 elsewhere)
INT8_WEIGHTS_BY_CLASS = {"vnni": "int8", "avx2": "uint8", "baseline": "uint8"}


def measured_peak(threads: int | None = None) -> PeakEstimate | None:
    """This CPU's peak at ``threads`` (None: the physical cores): the nominal FP32 estimate, or the FP32
    product measured on as many threads where more, and the 8-bit product measured for INT8 models
    (``PeakEstimate``)."""
    nominal = estimated_peak(threads)
    if nominal is None:
        return None
    try:
        return replace(
            nominal,
            measured_gemm=measured_gemm(nominal.cores),
            measured_int8_gemm=measured_gemm(nominal.cores, INT8_WEIGHTS_BY_CLASS[int8_cpu_class()]),
        )
    except FacebatchError as exc:
        warn(f"the matrix-product probe did not run ({exc}); the CPU's peak is the nominal FP32 estimate only")
        return nominal
