"""ArcFace weights from recognition ONNX files in the official layout (w600k_r50.onnx,
w600k_mbf.onnx, glintr100.onnx: batch traced at 1, numeric names, BN folded only where it
follows a conv) or from batch-keeping re-exports.

The network is inferred from the graph's Conv signature unless named, populated by graph
order (``onnx_weights`` + ``onnx_layers``), then *proven* against the source file.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from facebatch.configs.arcface import (
    ARCFACE_CONFIGS,
    ARCFACE_INPUT_SIZE,
    EMBEDDING_NAME,
    INPUT_NAME,
    IResNetConfig,
    MobileFaceNetConfig,
    arcface_network,
    embedder_outputs,
)
from facebatch.core.errors import WeightsError
from facebatch.core.onnx_graph import GraphView, load_onnx
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.torch_runner import TorchRunner
from facebatch.exporter.models.arcface import ArcFaceBackbone, build_arcface
from facebatch.exporter.weights.onnx_layers import assign_dense, assign_free_norms, assign_prelus, graph_dense
from facebatch.exporter.weights.onnx_weights import assign_convs, graph_convs, module_signature, trace_calls
from facebatch.verify.parity import ParityReport, compare_outputs


def _example() -> torch.Tensor:
    return torch.zeros(2, 3, ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE)  # 2: BatchNorm1d in eval takes any batch


def conv_count(network: str) -> int:
    """Conv layers of a network, from its config alone (no model is built)."""
    config = ARCFACE_CONFIGS[network]
    if isinstance(config, IResNetConfig):
        return 1 + 2 * sum(config.layers) + len(config.layers)  # stem, 2 per block, 1 downsample per stage
    assert isinstance(config, MobileFaceNetConfig)
    depthwise_units = 3 + sum(config.blocks[1:])  # 3 strided DepthWise + the residual blocks
    return 2 + 3 * depthwise_units + 2  # 2 stem ConvBlocks, 3 convs per unit, conv_sep, GDC


@cache
def network_signature(network: str) -> tuple:
    model = build_arcface(network)
    modules = dict(model.named_modules())
    return tuple(module_signature(modules[c]) for c in trace_calls(model, _example()).convs)


def infer_arcface_network(view: GraphView, source: str) -> str:
    graph_sig = tuple(gc.signature for gc in graph_convs(view))
    candidates = [n for n in ARCFACE_CONFIGS if conv_count(n) == len(graph_sig)]
    for network in candidates:
        if network_signature(network) == graph_sig:
            return network
    counts = ", ".join(f"{n} {conv_count(n)}" for n in ARCFACE_CONFIGS)
    raise WeightsError(
        f"{source} is not an ArcFace network this tool knows: it has {len(graph_sig)} Conv nodes "
        f"(known: {counts}) or their shapes differ. A foreign embedder cannot be re-exported, but describing it "
        "(the describe command) gives it a spec so that verify and bench treat it like ours",
        field="weights",
    )


def embedding_size_of(view: GraphView, source: str) -> int:
    dense = graph_dense(view)
    if not dense:
        raise WeightsError(f"{source} has no Gemm/MatMul layer; it is not an ArcFace embedder")
    return int(dense[-1].weight.shape[0])


def arcface_from_onnx(path: Path, network: str | None = None) -> tuple[ArcFaceBackbone, str]:
    """Build the network (named or inferred) and populate every tensor from ``path``."""
    path = Path(path)
    view = GraphView(load_onnx(path, "weights file", WeightsError))
    inferred = infer_arcface_network(view, path.name)
    if network is not None and arcface_network(network) != inferred:
        raise WeightsError(f"{path.name} does not fit {arcface_network(network)}; it looks like {inferred}")
    model = build_arcface(inferred, embedding_size_of(view, path.name))
    trace = trace_calls(model, _example())
    assignment = assign_convs(model, view, graph_convs(view), trace)
    assign_prelus(model, view, trace, assignment)
    used = assign_dense(model, view, trace, assignment)
    assign_free_norms(model, view, trace, assignment, used)
    assignment.load_into(model)
    return model.eval(), inferred


def prove_arcface_import(
    model: ArcFaceBackbone, path: Path, frames: np.ndarray, label: str | None = None
) -> ParityReport:
    """Run the source file one frame at a time (official files are traced at batch 1) and the
    torch model on the same frames; compare embeddings (max abs diff and per-row cosine)."""
    path = Path(path)
    with OnnxRuntimeRunner(path) as runner:
        (input_name,) = runner.input_names
        source = np.concatenate(
            [next(iter(runner.infer({input_name: f[None]}).values())).reshape(1, -1) for f in frames]
        )
    outputs = embedder_outputs(EMBEDDING_NAME, source.shape[1])
    with TorchRunner.single_input(model, INPUT_NAME, [EMBEDDING_NAME], f"torch {type(model).__name__}") as torch_model:
        ours = torch_model.infer({INPUT_NAME: frames})
    return compare_outputs(label or f"import proof vs {path.name}", ours, {EMBEDDING_NAME: source}, outputs)
