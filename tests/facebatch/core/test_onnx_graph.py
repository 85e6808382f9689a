"""The shared ONNX graph helpers: loading with the caller's error, I/O dims, constants seen
through Constant and Identity nodes, producers and consumers."""

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from facebatch.core.errors import SpecError, WeightsError
from facebatch.core.onnx_graph import (
    GraphView,
    attribute,
    graph_input,
    graph_inputs,
    inferred_shapes,
    io_dims,
    load_onnx,
    node_label,
)
from tests.data.graphs import folded_head, make_model


def test_loading_fails_in_one_line_with_the_callers_error(tmp_path: Path):
    with pytest.raises(WeightsError, match="weights file .*missing.onnx does not exist"):
        load_onnx(tmp_path / "missing.onnx", "weights file", WeightsError)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(b"\x08\x07" + b"\xff" * 64)
    with pytest.raises(SpecError, match="not a readable ONNX file .*truncated"):
        load_onnx(cut, "model file", SpecError)


def test_io_dims_skip_initializers_and_name_symbols():
    model = folded_head(batch="N")
    assert io_dims(model) == {"input.1": ["N", 3, 4, 4], "rows": [None, 2]}
    assert graph_inputs(model) == {"input.1": ["N", 3, 4, 4]}
    assert graph_input(model, SpecError) == ("input.1", ["N", 3, 4, 4])
    two = make_model([helper.make_node("Add", ["a", "b"], ["c"])], [("a", [1]), ("b", [1])], [("c", [1])])
    with pytest.raises(SpecError, match="expected one graph input, found 2: a, b"):
        graph_input(two, SpecError)


def test_the_view_sees_constants_through_constant_and_identity_nodes():
    nodes = [
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", 7, [2], [0, -1])),
        helper.make_node("Identity", ["k"], ["k2"]),
        helper.make_node("Reshape", ["x", "k2"], ["y"], name=""),
    ]
    model = make_model(nodes, [("x", [2, 3])], [("y", [2, 3])])
    view = GraphView(model)
    np.testing.assert_array_equal(view.const("k2"), [0, -1])
    assert view.const("x") is None and view.const("") is None
    reshape = view.producers["y"]
    assert node_label(reshape) == "y"  # unnamed nodes are called by their first output
    assert (
        view.consumers["k2"] == [reshape] and view.only_consumer("y") is None
    )  # a graph output has no single consumer
    assert view.count("Identity") == 1
    assert (
        attribute(folded_head().graph.node[1], "perm", None) == [2, 3, 0, 1] and attribute(reshape, "allowzero", 0) == 0
    )
    assert inferred_shapes(model)["y"] == [2, 3]
