"""Check 5 on hand-built graphs: the first node that mixes frames by value, the first that
only folds the batch, and nothing for a graph that keeps frames apart."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from facebatch.core.errors import EngineError
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeIntermediateRunner, OnnxRuntimeRunner
from facebatch.verify.lint import lint_graph, relaxed_batch
from facebatch.verify.localize import localise
from tests.data.graphs import batch_mean_leak, folded_head, make_model

FRAMES = np.random.default_rng(5).standard_normal((3, 3, 4, 4)).astype(np.float32)


def run(model: onnx.ModelProto, frames: np.ndarray = FRAMES):
    with OnnxRuntimeIntermediateRunner(relaxed_batch(model)) as runner:
        return localise(runner, model, frames, lint_graph(model))


def test_a_batch_mean_is_named_as_the_node_that_mixes(tmp_path: Path):
    model = onnx.load(str(batch_mean_leak(tmp_path / "leak.onnx")))
    frames = np.random.default_rng(1).standard_normal((3, 3, 112, 112)).astype(np.float32)
    mixes, folds = run(model, frames)
    assert mixes is not None and mixes.node == "batch_mean" and mixes.kind == "mixes"
    assert mixes.hint == "ReduceMean over axis 0 (the batch) combines frames" and mixes.detail.endswith(
        "the batch was reduced away"
    )
    assert folds is None


def test_the_official_head_folds_without_mixing_and_the_hint_names_the_reshape():
    mixes, folds = run(folded_head(batch=1))
    assert mixes is None
    assert folds is not None and folds.node == "head_transpose" and folds.kind == "folds"
    assert "the frames' values are all there, rearranged" in folds.detail
    assert "Reshape to [-1, 2] after Transpose(perm=[2, 3, 0, 1]) folds the batch into the rows" in folds.hint


def test_a_clean_graph_has_no_culprit():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), helper.make_node("Relu", ["t"], ["y"])]
    assert run(make_model(nodes, [("x", ["batch", 3, 4, 4])], [("y", ["batch", 4, 4, 3])])) == (None, None)


def test_localisation_needs_the_intermediate_capability():
    model = folded_head(batch="batch")
    with OnnxRuntimeRunner(model) as plain:
        with pytest.raises(EngineError, match="cannot expose intermediate tensors"):
            localise(plain, model, FRAMES, [])


def test_non_finite_values_are_named_as_such_not_as_mixing(tmp_path: Path):
    """A Sqrt of a negative constant makes NaN: check 1 fails (NaN never equals NaN), and check 5
    names the Sqrt as the node that produces non-finite values, not as one that mixes frames."""
    nodes = [
        helper.make_node("Relu", ["input.1"], ["positive"], name="relu"),
        helper.make_node("Add", ["positive", "negative"], ["shifted"], name="shift"),
        helper.make_node("Sqrt", ["shifted"], ["root"], name="bad_sqrt"),
        helper.make_node("Mul", ["root", "half"], ["embedding"], name="scale"),
    ]
    model = make_model(
        nodes,
        [("input.1", ["batch", 3, 4, 4])],
        [("embedding", ["batch", 3, 4, 4])],
        {"negative": np.array(-100.0, np.float32), "half": np.array(0.5, np.float32)},
    )
    mixes, folds = run(model)
    assert mixes is not None and mixes.node == "bad_sqrt" and mixes.kind == "non-finite" and folds is None
    assert "produces NaN or Inf" in mixes.describe() and "combines values" not in mixes.describe()
    assert mixes.detail.startswith("144 of 144 values non-finite in the batch")
    from facebatch.verify.verify_job import VerifyOptions, run_checks

    path = tmp_path / "nan.onnx"
    onnx.save(model, str(path))
    report = run_checks(path, VerifyOptions(batch_sizes=(1, 2)))
    localisation = next(c for c in report.checks if c.number == 5)
    assert localisation.status == "fail" and "Sqrt bad_sqrt produces NaN or Inf" in localisation.summary
