"""fix's graph surgery (``fix_surgery``): the repaired graph in memory, before any proof or write."""

import numpy as np

from facebatch.core.onnx_graph import io_dims
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.workflows.fix_surgery import plan_repair
from tests.data.graphs import folded_head


def test_the_folded_head_is_rewritten_to_keep_the_batch():
    plan = plan_repair(folded_head(batch=1))
    assert plan.repairs_everything and not plan.remaining
    assert "perm [2, 3, 0, 1] → [0, 2, 3, 1]" in plan.changes[0] and "shape [-1, 2] → [0, -1, 2]" in plan.changes[1]
    assert io_dims(plan.model)["input.1"][0] == "batch" and io_dims(plan.model)["rows"][0] == "batch"
    frames = np.random.default_rng(3).standard_normal((3, 3, 4, 4)).astype(np.float32)
    with OnnxRuntimeRunner(plan.model) as repaired, OnnxRuntimeRunner(folded_head(batch=1)) as original:
        together = repaired.infer({"input.1": frames})["rows"]
        for i in range(3):  # each frame's rows, in the original's (y, x, anchor) order
            np.testing.assert_allclose(together[i], original.infer({"input.1": frames[i : i + 1]})["rows"], atol=1e-6)
