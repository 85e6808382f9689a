"""FP32 ONNX → INT8 ONNX by onnxruntime's static quantisation, the batch axis kept symbolic.

* QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantised operator): the
  graph stays a standard ONNX file that onnxruntime runs with its integer kernels (VNNI
  where the CPU has it) and OpenVINO compiles to its own INT8;
* per output channel weights by default (``per_channel``), unsigned 8-bit activations, ranges from
  min/max over the calibration frames; how the weights are stored and what stays FP32 is a
  ``Int8Recipe``, chosen per CPU class (``RECIPES_FOR_CPU``) because the integer kernels differ:
  with VNNI a u8·s8 product is summed in 32 bits; on AVX2 alone pairs of them are summed in 16
  bits first and saturate, which moved SCRFD-2.5G's landmarks by up to 5.5 px (0.56 px mean on
  VNNI, 1.22 on AVX2). Measured on AVX2 (17 fixture photos, FP32 as the reference):

  ======================  =========================================  ==========================
  recipe                  SCRFD-2.5G at 640: landmark px max / mean  mobilefacenet_128d: min cos
  ======================  =========================================  ==========================
  u8s8                    5.50 / 1.22 (min IoU 0.65)                 0.893
  u8s8-7bit               2.79 / 0.66                                0.812
  u8u8                    2.47 / 0.60                                0.845
  u8s8-input-fp32         2.21 / 0.61                                0.946
  ======================  =========================================  ==========================

  The network's input is 8-bit pixels already: re-quantising it on a calibrated grid adds noise to
  every layer, which is why keeping the convolutions that read it in FP32 helps embedders most.
  ``facebatch quantize`` tries each candidate of this CPU's class and keeps the most accurate;
* a mixed recipe (``int8_mixed``: an embedder no candidate keeps within its gate) quantises only the
  compute nodes a search chose, with the Relu/Clip after each; the others stay FP32, named in the
  metadata (``kept_fp32``). onnxruntime's sessions must then not re-quantise those FP32 weights
  (``onnxruntime_runner.ALTERING_OPTIMIZERS``);
* before quantising, onnxruntime's pre-processing (shape inference) runs on a copy, as its
  documentation asks; afterwards the batch axis must still be
  symbolic on every input and output, or the result is refused.

Building an INT8 model is not running one, so this module, like the TensorRT builder, may
import its tool (``onnxruntime.quantization``) directly.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from facebatch.configs.precision import Precision
from facebatch.configs.spec import ModelSpec
from facebatch.configs.spec_io import SPEC_PROP, spec_to_dict
from facebatch.core.errors import ExportError
from facebatch.core.onnx_graph import COMPUTE_OPS, io_dims
from facebatch.engines.build.int8_recipes import ACTIVATIONS, RECIPES, Int8Recipe
from facebatch.engines.runners.onnxruntime_runner import onnxruntime_quiet

CALIBRATION_BATCH = 8  # frames per calibration call
MIN_OPSET = 13
QUANT_FORMAT = "QDQ"


@dataclass
class Int8Quantization:
    model: onnx.ModelProto
    spec: ModelSpec  # the source's spec at INT8 tolerances
    per_channel: bool
    calibration_frames: int
    quantized_nodes: dict[str, int]  # op type → how many run in INT8 (QDQ pairs around them)
    recipe: Int8Recipe = RECIPES["u8s8"]
    cpu_class: str = ""  # the CPU class it was made and judged on
    kept_fp32: tuple[str, ...] = ()  # nodes the recipe kept in FP32

    def describe(self) -> str:
        ops = ", ".join(f"{count} {op}" for op, count in sorted(self.quantized_nodes.items(), key=lambda kv: -kv[1]))
        channel = "per-channel" if self.per_channel else "per-tensor"
        return (
            f"{QUANT_FORMAT}, {self.recipe.describe()} ({channel}), min/max over {self.calibration_frames} calibration frames, "
            f"made on a CPU of class {self.cpu_class or 'unknown'}; INT8: {ops or 'nothing'}"
        )


def calibration_hash(sources: Sequence[str], frames: np.ndarray) -> str:
    """What the calibration saw: the sources' names and the frames' bytes."""
    digest = hashlib.sha256()
    for name in sources:
        digest.update(name.encode() + b"\0")
    digest.update(np.ascontiguousarray(frames, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _quantized_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """Operators between a DequantizeLinear and a QuantizeLinear, their weights dequantized too (what
    runs in INT8 once onnxruntime fuses the pairs); a layer kept FP32 reads a DequantizeLinear as well,
    but its float weights, or its float output, say it is not one of them."""
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not node.input or not node.output:
            continue
        weights = node.op_type not in COMPUTE_OPS or (len(node.input) > 1 and node.input[1] in dequantized)
        if node.input[0] in dequantized and weights and node.output[0] in quantized:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _check_batch_symbolic(model: onnx.ModelProto, label: str) -> None:
    fixed = {name: dims[0] for name, dims in io_dims(model).items() if not dims or not isinstance(dims[0], str)}
    if fixed:
        raise ExportError(
            f"quantising {label} fixed the batch axis of {', '.join(f'{n} ({d})' for n, d in fixed.items())}; "
            "nothing was written"
        )


def _at_least_opset(source: Path, upgraded: Path) -> Path:
    """Per-channel QuantizeLinear/DequantizeLinear (their ``axis``) need opset 13: an older graph
    (insightface's recognition files are opset 11) is converted first, on a copy."""
    model = onnx.load(str(source))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset >= MIN_OPSET:
        return source
    onnx.save(onnx.version_converter.convert_version(model, MIN_OPSET), str(upgraded))
    return upgraded


def _input_convs(model: onnx.ModelProto) -> list[str]:
    """The Conv nodes that read a graph input directly (named: quantize_static excludes by name)."""
    inputs = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input and n.input[0] in inputs and n.name]


ACTIVATIONS_FUSED = ("Relu", "Clip")


def _with_activations(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """``names`` and the Relu/Clip nodes that read their outputs. Quantised without its activation, a
    conv's output is quantised before it, over the wide pre-activation range: mobilefacenet_128d with
    80 % of its arithmetic in INT8 fell from min cosine 0.992 to 0.959 on the fixture faces."""
    chosen = set(names)
    outputs = {out for node in model.graph.node if node.name in chosen for out in node.output}
    followers = [
        n.name for n in model.graph.node if n.op_type in ACTIVATIONS_FUSED and n.input and n.input[0] in outputs
    ]
    return [*names, *followers]


def _calibration_reader(frames: np.ndarray, input_name: str):  # an onnxruntime CalibrationDataReader
    """The frames, CALIBRATION_BATCH at a time, as onnxruntime's calibrator reads them."""
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(
                frames[i : i + CALIBRATION_BATCH] for i in range(0, len(frames), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    return Frames()


def _caches() -> bool:
    """Whether this onnxruntime's quantize_static keeps calibration ranges in a file (1.2x and later)."""
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def quantize_to_int8(
    source: Path,
    spec: ModelSpec,
    frames: np.ndarray,
    per_channel: bool = True,
    min_cosine: float | None = None,
    recipe: Int8Recipe = RECIPES["u8s8"],
    cpu_class: str = "",
    int8_nodes: Sequence[str] = (),
    calibration_cache: Path | None = None,
) -> Int8Quantization:
    """Quantise ``source`` (an FP32 ONNX file) with ``frames`` [N, 3, H, W] as calibration, the
    ``recipe`` way; ``min_cosine``: the embedding cosine the INT8 spec will hold it to. A mixed
    recipe quantises only the compute nodes named in ``int8_nodes`` (with their activations).

    ``calibration_cache``: a file (in a folder the caller owns) for the activation ranges. The ranges
    depend only on the source and the frames (min/max of every tensor an operator could quantise,
    whatever the recipe or the nodes chosen), so candidates of one source and one calibration share
    them: the first calibrates and writes the file, the others read it. Calibration was two thirds
    of a mixed search's time (66 of 107 s for 54 candidates of mobilefacenet_128d)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(frames) == 0:
        raise ExportError("INT8 calibration needs at least one frame")

    with tempfile.TemporaryDirectory(prefix="facebatch-int8-") as scratch, onnxruntime_quiet():
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        try:
            source = _at_least_opset(source, Path(scratch) / "upgraded.onnx")
            # shape inference only: our graphs are simplified already (onnxsim folds BatchNorm into Conv), and
            # onnxruntime's optimiser would print its notes to stderr before our lines
            quant_pre_process(str(source), str(prepared), skip_optimization=True, skip_symbolic_shape=False)
            graph = onnx.load(str(prepared), load_external_data=False)
            if recipe.mixed:  # only the chosen nodes are quantised; the other compute nodes are recorded as kept
                only, excluded = _with_activations(graph, int8_nodes), []
                kept = [n.name for n in graph.graph.node if n.op_type in COMPUTE_OPS and n.name not in int8_nodes]
            else:
                only, excluded = None, _input_convs(graph) if recipe.input_convs_fp32 else []
                kept = excluded
            weights = QuantType.QUInt8 if recipe.weights == "uint8" else QuantType.QInt8
            cached = {"calibration_cache_path": str(calibration_cache)} if calibration_cache and _caches() else {}
            quantize_static(
                str(prepared),
                str(quantized),
                _calibration_reader(frames, spec.input.name),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                reduce_range=recipe.reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=weights,
                nodes_to_exclude=excluded,
                nodes_to_quantize=only,
                **cached,
            )
        except Exception as exc:  # onnxruntime's tools raise their own and plain exceptions
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ExportError(f"onnxruntime could not quantise {source.name}: {message}") from None
        model = onnx.load(str(quantized))
    _check_batch_symbolic(model, source.name)
    return Int8Quantization(
        model,
        spec.at_int8(min_cosine),
        per_channel,
        len(frames),
        _quantized_nodes(model),
        recipe,
        cpu_class,
        tuple(kept),
    )


def stamp_int8(
    quantization: Int8Quantization,
    source_props: dict[str, str],
    source_name: str,
    source_sha256: str,
    calibration_sha256: str,
) -> onnx.ModelProto:
    """The quantised model with the source's metadata, its INT8 spec, the precision and where it came from."""
    model = quantization.model
    props = dict(source_props)
    props |= {
        SPEC_PROP: json.dumps(spec_to_dict(quantization.spec), sort_keys=True),
        "precision": Precision.INT8.value,
        "quantization": json.dumps(
            {
                "format": QUANT_FORMAT,
                "recipe": quantization.recipe.name,
                "weights": quantization.recipe.weights,
                "reduce_range": quantization.recipe.reduce_range,
                "activations": ACTIVATIONS,
                "kept_fp32": list(quantization.kept_fp32),
                "per_channel": quantization.per_channel,
                "calibration": "minmax",
                "calibration_frames": quantization.calibration_frames,
                "cpu_class": quantization.cpu_class,
            }
        ),
        "calibration_sha256": calibration_sha256,
        "source_onnx": source_name,
        "source_sha256": source_sha256,
    }
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    return model
