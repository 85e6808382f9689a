"""Check 6 (and the static half of check 2) rule by rule, each on a small hand-built graph:
the lint follows the batch axis node by node and says, per node, what moves, folds, fixes
or mixes it; graphs that keep the batch draw no finding."""

import numpy as np
import pytest
from onnx import helper

from facebatch.verify.layout import io_findings
from facebatch.verify.lint import lint_graph, relaxed_batch
from tests.data.graphs import folded_head, make_model

X = [("x", ["batch", 3, 4, 4])]


def lint_messages(model) -> list[str]:
    return [f"{f.op_type} {f.node}: {f.message}" for f in lint_graph(model) if f.check == "lint"]


def layout_messages(model) -> list[str]:
    return [f.message for f in io_findings(model) + lint_graph(model) if f.check == "layout"]


def one_node(node, out_dims, initializers=None, opset=13):
    return make_model([node], X, [("y", out_dims)], initializers, opset)


CASES = {
    "transpose moves the batch": (
        one_node(helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[1, 0, 2, 3]), [3, "batch", 4, 4]),
        "Transpose t: Transpose(perm=[1, 0, 2, 3]) moves the batch from axis 0 to axis 1",
    ),
    "reshape after the official head's transpose": (
        folded_head(batch="batch"),
        "Reshape head_reshape: Reshape to [-1, 2] after Transpose(perm=[2, 3, 0, 1]) folds the batch into the rows",
    ),
    "reshape constant fixes dim 0": (
        one_node(helper.make_node("Reshape", ["x", "s"], ["y"], name="r"), [1, 48], {"s": np.array([1, -1], np.int64)}),
        "Reshape r: Reshape to constant [1, -1] fixes dim 0 to 1",
    ),
    "reshape folds the batch": (
        one_node(helper.make_node("Reshape", ["x", "s"], ["y"], name="r"), [None], {"s": np.array([-1], np.int64)}),
        "Reshape r: Reshape to [-1] folds the batch (axis 0) into other axes",
    ),
    "flatten from axis 0": (
        one_node(helper.make_node("Flatten", ["x"], ["y"], name="f", axis=0), [1, None]),
        "Flatten f: Flatten(axis=0) folds the batch into the rows",
    ),
    "squeeze the batch axis": (
        one_node(helper.make_node("Squeeze", ["x", "a"], ["y"], name="sq"), [3, 4, 4], {"a": np.array([0], np.int64)}),
        "Squeeze sq: Squeeze removes the batch axis (it was 1 at export)",
    ),
    "reduce over the batch": (
        one_node(helper.make_node("ReduceMean", ["x"], ["y"], name="m", axes=[0], keepdims=1), [1, 3, 4, 4]),
        "ReduceMean m: ReduceMean over axis 0 (the batch) combines frames",
    ),
    "gather a frame": (
        one_node(
            helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=0), [3, 4, 4], {"i": np.array(0, np.int64)}
        ),
        "Gather g: Gather on the batch axis picks fixed frames",
    ),
    "slice frames": (
        one_node(
            helper.make_node("Slice", ["x", "b", "e", "a"], ["y"], name="sl"),
            [1, 3, 4, 4],
            {"b": np.array([0], np.int64), "e": np.array([1], np.int64), "a": np.array([0], np.int64)},
        ),
        "Slice sl: Slice on the batch axis picks fixed frames",
    ),
    "split frames": (
        one_node(helper.make_node("Split", ["x"], ["y"], name="sp", axis=0), [None, 3, 4, 4]),
        "Split sp: Split on the batch axis picks fixed frames",
    ),
    "layer norm from axis 0": (
        one_node(
            helper.make_node("LayerNormalization", ["x", "g"], ["y"], name="ln", axis=0),
            ["batch", 3, 4, 4],
            {"g": np.ones((1, 3, 4, 4), np.float32)},
            opset=17,
        ),
        "LayerNormalization ln: LayerNormalization from axis 0 computes statistics across frames",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_rule_names_the_node_and_says_why(name):
    model, expected = CASES[name]
    messages = lint_messages(model)
    assert any(m.startswith(expected) for m in messages), messages


def test_statistics_over_a_folded_tensor_are_flagged_at_the_norm():
    nodes = [
        helper.make_node("Reshape", ["x", "s"], ["r"], name="group"),
        helper.make_node("InstanceNormalization", ["r", "gamma", "beta"], ["n"], name="norm"),
        helper.make_node("Reshape", ["n", "back"], ["y"], name="ungroup"),
    ]
    init = {
        "s": np.array([1, 3, -1], np.int64),
        "gamma": np.ones(3, np.float32),
        "beta": np.zeros(3, np.float32),
        "back": np.array([1, 3, 4, 4], np.int64),
    }
    messages = lint_messages(make_model(nodes, X, [("y", [1, 3, 4, 4])], init))
    assert messages[0].startswith("Reshape group: Reshape to constant [1, 3, -1] fixes dim 0 to 1")
    assert any(
        m.startswith(
            "InstanceNormalization norm: InstanceNormalization computes statistics over a tensor whose batch "
            "was folded by Reshape group"
        )
        for m in messages
    )


@pytest.mark.parametrize(
    "node, out_dims, init",
    [
        (
            helper.make_node("Reshape", ["x", "s"], ["y"]),
            ["batch", 48],
            {"s": np.array([0, -1], np.int64)},
        ),  # 0 copies dim 0
        (
            helper.make_node("Reshape", ["x", "s"], ["y"]),
            ["batch", 48],
            {"s": np.array([-1, 48], np.int64)},
        ),  # -1 with the rest known
        (helper.make_node("Flatten", ["x"], ["y"], axis=1), ["batch", 48], None),
        (helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]), ["batch", 4, 4, 3], None),
        (helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1), ["batch", 3, 1, 1], None),
        (helper.make_node("Concat", ["x", "x"], ["y"], axis=0), [None, 3, 4, 4], None),  # joining frames picks none
    ],
)
def test_graphs_that_keep_the_batch_draw_no_lint(node, out_dims, init):
    assert lint_messages(one_node(node, out_dims, init)) == []


def test_outputs_without_the_batch_on_axis_0_are_layout_findings():
    moved = one_node(helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3]), [3, "batch", 4, 4])
    assert "output y carries the batch on axis 1, not 0" in layout_messages(moved)
    assert any(
        "output rows has lost the batch axis (Reshape head_reshape folded it)" in m
        for m in layout_messages(folded_head(batch="batch"))
    )
    constant = make_model([helper.make_node("Identity", ["c"], ["y"])], X, [("y", [2])], {"c": np.zeros(2, np.float32)})
    assert "output y does not depend on the input batch" in layout_messages(constant)


def test_io_findings_name_fixed_batches_and_reused_symbols():
    fixed = folded_head(batch=1)
    assert any(m.startswith("input input.1 has its batch axis fixed to 1") for m in layout_messages(fixed))
    reused = make_model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [("x", ["batch", 3, "batch", 4])],
        [("y", ["batch", 3, "batch", 4])],
    )
    assert any("symbol 'batch' names the batch and also axes [2]" in m for m in layout_messages(reused))


def test_relaxed_batch_is_what_people_do_by_hand():
    relaxed = relaxed_batch(folded_head(batch=1))
    dims = relaxed.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 4, 4]
    assert not relaxed.graph.output[0].type.tensor_type.HasField("shape") and not relaxed.graph.value_info
