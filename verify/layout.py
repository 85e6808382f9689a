"""Static facts about a graph's I/O axes: is the batch symbolic everywhere, and is every
symbol used for one meaning only? Shared by export (to prove the artifact) and verify."""

from __future__ import annotations

import onnx

from facebatch.configs.spec import BATCH, ModelSpec
from facebatch.core.onnx_graph import io_dims
from facebatch.verify.lint import Finding


def axis_problems(model: onnx.ModelProto, spec: ModelSpec) -> list[str]:
    """Every way the graph's I/O disagrees with the spec's axes, in words."""
    problems: list[str] = []
    dims = io_dims(model)
    for tensor in spec.inputs + spec.outputs:
        graph = dims.get(tensor.name)
        if graph is None:
            problems.append(f"graph has no input/output named {tensor.name!r}")
            continue
        if len(graph) != len(tensor.dims):
            problems.append(f"{tensor.name} has rank {len(graph)}, spec says {len(tensor.dims)} ({list(tensor.dims)})")
            continue
        for axis, (want, have) in enumerate(zip(tensor.dims, graph, strict=False)):
            if isinstance(want, str) and have != want:
                what = f"fixed to {have}" if isinstance(have, int) else f"named {have!r}"
                problems.append(f"{tensor.name} axis {axis} should be symbolic {want!r} but is {what}")
            elif isinstance(want, int) and have != want:
                problems.append(f"{tensor.name} axis {axis} should be {want} but is {have!r}")
    extra = sorted(set(dims) - set(spec.input_names) - set(spec.output_names))
    if extra:
        problems.append(f"graph has inputs/outputs the spec does not name: {', '.join(extra)}")
    problems += symbol_reuse_problems(model)
    return problems


def symbol_reuse_problems(model: onnx.ModelProto) -> list[str]:
    """The batch symbol must mean the batch only: never on a non-leading axis anywhere."""
    problems = []
    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    for value in values:
        for axis, d in enumerate(value.type.tensor_type.shape.dim):
            if axis > 0 and d.dim_param == BATCH:
                problems.append(f"{value.name} uses the symbol {BATCH!r} on axis {axis}, not only for the batch")
    return problems


def io_findings(model: onnx.ModelProto) -> list[Finding]:
    """Check 2, static: fixed batch axes and one symbol used for several meanings."""
    findings = []
    dims = io_dims(model)
    output_names = {o.name for o in model.graph.output}
    for name, shape in dims.items():
        kind = "output" if name in output_names else "input"
        if shape and isinstance(shape[0], int):
            findings.append(Finding("layout", f"{kind} {name} has its batch axis fixed to {shape[0]} ({shape})"))
    uses: dict[str, set[int]] = {}
    for shape in dims.values():
        for axis, dim in enumerate(shape):
            if isinstance(dim, str):
                uses.setdefault(dim, set()).add(axis)
    for symbol, axes in sorted(uses.items()):
        if 0 in axes and len(axes) > 1:
            findings.append(
                Finding(
                    "layout",
                    f"symbol {symbol!r} names the batch and also axes {sorted(axes - {0})}: one symbol "
                    "means one value in the whole graph, so runtimes may tie the batch to the image size",
                )
            )
    return findings
