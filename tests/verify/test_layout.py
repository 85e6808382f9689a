"""Axis checks on real graphs: the official det_500m fixes its batch to 1 and leaves its
outputs' row axis unnamed; those are exactly the problems the export must not have."""

from pathlib import Path

import onnx

from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.core.onnx_graph import io_dims
from facebatch.verify.layout import axis_problems


def test_official_file_fails_the_spec_axes(models_dir: Path):
    model = onnx.load(str(models_dir / "det_500m.onnx"))
    assert io_dims(model)["input.1"][:2] == [1, 3]
    spec = scrfd_spec("scrfd_500m_bnkps", head_layout(SCRFD_CONFIGS["scrfd_500m_bnkps"]), 640, 640)
    problems = axis_problems(model, spec)
    assert any("input.1 axis 0 should be symbolic 'batch' but is fixed to 1" in p for p in problems)
    assert any("graph has no input/output named 'score_8'" in p for p in problems)


def test_batch_symbol_reused_on_another_axis_is_flagged():
    x = onnx.helper.make_tensor_value_info("input.1", onnx.TensorProto.FLOAT, ["batch", 3, "batch", 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 3, "batch", 8])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input.1"], ["y"])], "g", [x], [y])
    from facebatch.verify.layout import symbol_reuse_problems

    problems = symbol_reuse_problems(onnx.helper.make_model(graph))
    assert len(problems) == 2 and "axis 2" in problems[0]
