"""SCRFD weights from ONNX files: official model-pack layout or batch-keeping re-exports.

The variant is inferred from the graph (Conv signature, norm kind, landmarks) unless
named; the populated model is then *proven* against the source file on real frames.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.core.errors import WeightsError
from facebatch.core.onnx_graph import GraphView, graph_input, load_onnx
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.torch_runner import TorchRunner
from facebatch.exporter.models.scrfd import SCRFD, build_scrfd
from facebatch.exporter.weights.onnx_weights import (
    CallTrace,
    assign_convs,
    graph_convs,
    module_signature,
    scalar_multiplier,
    trace_calls,
)
from facebatch.verify.parity import ParityReport, compare_outputs

SIGNATURE_INPUT = 64  # smallest size that reaches stride 32 with a 2×2 map


def _example() -> torch.Tensor:
    return torch.zeros(1, 3, SIGNATURE_INPUT, SIGNATURE_INPUT)


def _call_signature(model: SCRFD) -> tuple[CallTrace, tuple]:
    modules = dict(model.named_modules())
    trace = trace_calls(model, _example())
    return trace, tuple(module_signature(modules[c]) for c in trace.convs)


@cache
def variant_signature(variant: str) -> tuple:
    return _call_signature(build_scrfd(**SCRFD_CONFIGS[variant]))[1]


def _uses_groupnorm(model_cfg: dict[str, Any]) -> bool:
    return model_cfg["bbox_head"].get("norm_cfg", {}).get("type") == "GN"


def _first_difference(graph_sig: tuple, model_sig: tuple) -> str:
    if len(graph_sig) != len(model_sig):
        return f"the graph has {len(graph_sig)} Conv nodes, the variant has {len(model_sig)}"
    for i, (g, m) in enumerate(zip(graph_sig, model_sig, strict=False)):
        if g != m:
            return f"Conv #{i} has weight {list(g[0])} stride {list(g[1])} group {g[2]}, the variant expects {list(m[0])} stride {list(m[1])} group {m[2]}"
    return "convs match but norms or landmark outputs do not"


def infer_scrfd_variant(view: GraphView, source: str) -> str:
    """The one released config whose conv calls, norm kind and outputs fit the graph."""
    graph_sig = tuple(gc.signature for gc in graph_convs(view))
    if not graph_sig:
        raise WeightsError(f"{source} has no Conv nodes; it is not an SCRFD detector")
    has_gn = view.count("InstanceNormalization") + view.count("GroupNormalization") > 0
    n_outputs = len(view.model.graph.output)
    matches = [
        v
        for v, cfg in SCRFD_CONFIGS.items()
        if variant_signature(v) == graph_sig
        and _uses_groupnorm(cfg) == has_gn
        and len(head_layout(cfg).output_names()) == n_outputs
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise WeightsError(
            f"{source} fits several SCRFD variants ({', '.join(matches)}); name one as the model", field="model"
        )

    def agreement(v: str) -> tuple[int, int]:
        sig = variant_signature(v)
        return sum(g == m for g, m in zip(graph_sig, sig, strict=False)), -abs(len(sig) - len(graph_sig))

    closest = max(SCRFD_CONFIGS, key=agreement)
    raise WeightsError(
        f"{source} is not an SCRFD detector this tool knows ({len(graph_sig)} Conv nodes, {n_outputs} outputs); "
        f"closest is {closest}: {_first_difference(graph_sig, variant_signature(closest))}. "
        "For a custom-trained SCRFD give its config file",
        field="config",
    )


def scrfd_from_onnx(
    path: Path,
    variant: str | None = None,
    model_cfg: dict[str, Any] | None = None,
) -> tuple[SCRFD, str]:
    """Build the variant (named, from a config, or inferred) and populate it from ``path``."""
    path = Path(path)
    view = GraphView(load_onnx(path, "weights file", WeightsError))
    convs = graph_convs(view)
    if model_cfg is None:
        variant = variant or infer_scrfd_variant(view, path.name)
        model_cfg = SCRFD_CONFIGS[variant]
    variant = variant or path.stem
    model = build_scrfd(**model_cfg)
    trace, model_sig = _call_signature(model)
    graph_sig = tuple(gc.signature for gc in convs)
    if graph_sig != model_sig:
        try:
            looks_like = f"; it looks like {infer_scrfd_variant(view, path.name)}"
        except WeightsError:
            looks_like = ""
        raise WeightsError(f"{path.name} does not fit {variant}: {_first_difference(graph_sig, model_sig)}{looks_like}")
    scales: list[float] = []
    if model.bbox_head.use_scale:
        convs, scales = _unfold_scales(view, convs, trace.convs)
    assignment = assign_convs(model, view, convs, trace)
    for level, factor in enumerate(scales):
        assignment.set(f"bbox_head.scales.{level}.scale", np.float32(factor), "Mul")
    assignment.load_into(model, optional=("integral.project",))
    return model.eval(), variant


def _unfold_scales(view: GraphView, convs: list, calls: list[str]) -> tuple[list, list[float]]:
    """Per-level bbox Scale factors. A Mul after the regression conv carries it; without one
    the exporter folded it into the conv (W·s, b·s). When strides share that conv, the
    folded copies must be proportional: recover W from the first and s_i from the ratios."""
    reg_calls = [i for i, name in enumerate(calls) if name.startswith("bbox_head.stride_reg.")]
    scales = []
    first: dict[str, tuple[np.ndarray, float]] = {}
    convs = list(convs)
    for call_index in reg_calls:
        gc = convs[call_index]
        factor = scalar_multiplier(view, gc.node.output[0])
        if factor is not None:
            scales.append(factor)
            continue
        name = calls[call_index]
        if name not in first:  # the first use defines the shared weights; its scale stays folded
            first[name] = (gc.weight, 1.0)
            scales.append(1.0)
            continue
        base = first[name][0]
        ratio = float(np.vdot(gc.weight, base) / np.vdot(base, base))
        if not np.allclose(gc.weight, ratio * base, rtol=1e-4, atol=1e-6):
            raise WeightsError(f"{gc.describe()} shares {name} but its weights are not a scaled copy of the first use")
        bias = None if gc.bias is None else (gc.bias / ratio).astype(np.float32)
        convs[call_index] = replace(gc, weight=(gc.weight / ratio).astype(np.float32), bias=bias)
        scales.append(ratio)
    return convs, scales


def source_input_size(path: Path, fallback: tuple[int, int]) -> tuple[int, int]:
    """The fixed H, W of a source graph; ``fallback`` for the dims that are symbolic."""
    _, dims = graph_input(onnx.load(str(path), load_external_data=False), WeightsError)
    graph_hw = dims[2:4] if len(dims) == 4 else [None, None]
    return tuple(d if isinstance(d, int) and d > 0 else f for d, f in zip(graph_hw, fallback, strict=False))  # type: ignore[return-value]


def prove_scrfd_import(model: SCRFD, path: Path, frames: np.ndarray, label: str | None = None) -> ParityReport:
    """Run the source file frame by frame (its batch is fixed to 1) and the torch model on the
    same frames; compare every output after mapping the source layout to [N, rows, C]."""
    path = Path(path)
    height, width = frames.shape[2:]
    spec = scrfd_spec("import", model.layout, height, width)
    with OnnxRuntimeRunner(path) as runner:
        (input_name,) = runner.input_names  # source detectors have one input
        per_frame = []
        for frame in frames:
            raw = runner.infer({input_name: frame[None]})
            per_frame.append(canonical_outputs(list(raw.values()), model.layout, height, width, batch=1))
    source = {name: np.concatenate([f[name] for f in per_frame]) for name in spec.output_names}
    with TorchRunner.from_spec(model, spec) as torch_model:
        ours = torch_model.infer({spec.input.name: frames})
    return compare_outputs(
        label or f"import proof vs {path.name}", ours, source, spec.outputs
    )  # the spec's FP32 tolerances
