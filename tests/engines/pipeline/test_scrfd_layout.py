"""The official-layout adapter: rows folded by Transpose(2,3,0,1)→Reshape(-1,C) unfold exactly."""

import numpy as np
import pytest

from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs, unfold_official_rows


def test_unfold_inverts_the_batch_folding_head():
    n, a, h, w, c = 3, 2, 4, 5, 10
    nchw = np.random.default_rng(0).standard_normal((n, a * c, h, w)).astype(np.float32)
    folded = nchw.transpose(2, 3, 0, 1).reshape(-1, c)  # what det_*.onnx heads do
    kept = nchw.transpose(0, 2, 3, 1).reshape(n, -1, c)  # what a batch-keeping head does
    np.testing.assert_array_equal(unfold_official_rows(folded, n, (h, w), a), kept)


def test_outputs_are_named_by_shape_whatever_their_order():
    layout = head_layout(SCRFD_CONFIGS["scrfd_500m_bnkps"])
    raw = [np.zeros((1, rows, c), np.float32) for c in (10, 1, 4) for rows in (12800, 800, 3200)]
    named = canonical_outputs(raw, layout, 640, 640, batch=1)
    assert sorted(named) == sorted(layout.output_names())
    assert named["kps_16"].shape == (1, 3200, 10)
    with pytest.raises(SpecError, match="matches no stride"):
        canonical_outputs([np.zeros((1, 7, 4), np.float32)], layout, 640, 640, batch=1)
