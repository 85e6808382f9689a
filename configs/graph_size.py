"""The input sizes a graph can run, read from the graph itself: one symbol naming both height and
width means square inputs only (insightface's exporter names every axis ``?``), and an SCRFD detector
that carries no spec of ours gets one from its graph — its outputs, the head every released SCRFD
has, and the input size from the graph, the caller, or insightface's 640 when the graph leaves it
symbolic."""

from __future__ import annotations

from pathlib import Path

import onnx

from facebatch.configs.family import scrfd_landmarks
from facebatch.configs.scrfd import INSIGHTFACE_DET_SIZE, SCRFD_NORMALIZE, check_input_size, released_head_layout
from facebatch.configs.spec import BATCH, Family, ModelSpec, TensorSpec, fp32_output
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import graph_input, io_dims


def shared_size_symbol(model: onnx.ModelProto) -> str | None:
    """The one symbol an NCHW input uses for both height and width, if it does (``['1', 3, '?', '?']``)."""
    dims = graph_input(model, SpecError)[1]
    if len(dims) == 4 and isinstance(dims[2], str) and dims[2] and dims[2] == dims[3]:
        return dims[2]
    return None


def square_size_allowed(name: str, symbol: str | None, size: tuple[int, int]) -> None:
    """Refuse, in one line, a non-square size for a graph whose height and width share ``symbol``."""
    if symbol is not None and size[0] != size[1]:
        side = max(size)
        raise SpecError(
            f"{name} names its input height and width with one symbol {symbol!r}, so it takes square inputs only; "
            f"pass a square size such as {side} instead of {size[0]}x{size[1]}",
            field="size",
        )


def symbolic_hw(dims: list) -> bool:
    """An NCHW input whose height or width is not a fixed number."""
    return len(dims) == 4 and any(not (isinstance(d, int) and d > 0) for d in dims[2:4])


def detector_spec(
    path: Path, model: onnx.ModelProto, size: tuple[int, int] | None
) -> tuple[ModelSpec, bool, list[str]]:
    """(spec, fixed size, notes) of an SCRFD detector graph that carries no spec of ours: ``size`` where
    the graph leaves a choice (square only where one symbol names height and width), else its own."""
    input_name, dims = graph_input(model, SpecError)
    graph_hw = [d if isinstance(d, int) and d > 0 else None for d in dims[2:4]] if len(dims) == 4 else [None, None]
    head = released_head_layout(bool(scrfd_landmarks(model)))
    notes = []
    if None not in graph_hw:
        size = (graph_hw[0], graph_hw[1])  # a fixed graph runs at its own size (verify's check_sizes refuses others)
    elif size is None:
        size = (INSIGHTFACE_DET_SIZE, INSIGHTFACE_DET_SIZE)
        notes.append(
            f"input size is symbolic; checking at {size[0]}x{size[1]}, insightface's detection size "
            "(give another size to check at it)"
        )
    else:
        square_size_allowed(path.name, shared_size_symbol(model), size)
    check_input_size(*size, head.size_multiple)
    out_dims = io_dims(model)
    outputs = tuple(
        fp32_output(o.name, (BATCH, f"rows_{o.name}", out_dims[o.name][-1]), embedder=False) for o in model.graph.output
    )
    spec = ModelSpec(
        name=path.stem,
        family=Family.SCRFD,
        inputs=(TensorSpec(input_name, (BATCH, 3, size[0], size[1])),),
        outputs=outputs,
        normalize=SCRFD_NORMALIZE,
        input_size=size,
        head=head,
    )
    return spec, not symbolic_hw(dims), notes
