import numpy as np
import pytest

from facebatch.configs.spec import ModelSpec, Normalize, ShapeRange, TensorSpec
from facebatch.configs.spec_io import spec_from_dict, spec_to_dict
from facebatch.errors import SpecError

NORM = Normalize((127.5, 127.5, 127.5), (128.0, 128.0, 128.0), rgb=True)


def _spec(**kw) -> ModelSpec:
    defaults = dict(
        name="m",
        family="scrfd",
        inputs=(TensorSpec("input.1", ("batch", 3, "height", "width")),),
        outputs=(TensorSpec("score_8", ("batch", "rows_8", 1)),),
        normalize=NORM,
    )
    defaults.update(kw)
    return ModelSpec(**defaults)


def test_dynamic_axes_are_derived_from_dims():
    spec = _spec()
    assert spec.dynamic_axes() == {"input.1": {0: "batch", 2: "height", 3: "width"}, "score_8": {0: "batch", 1: "rows_8"}}
    assert spec.input.concrete_shape({"batch": 4, "height": 64, "width": 32}) == (4, 3, 64, 32)


def test_spec_refuses_tensors_without_leading_batch_and_duplicate_names():
    with pytest.raises(SpecError, match="must have 'batch' as dim 0"):
        _spec(outputs=(TensorSpec("x", (1, "batch")),))
    with pytest.raises(SpecError, match="used twice"):
        _spec(outputs=(TensorSpec("input.1", ("batch", 1)),))


def test_shape_range_validates_order():
    assert ShapeRange(1, 16, 32).opt == 16
    with pytest.raises(SpecError):
        ShapeRange(4, 2, 32)


def test_normalize_swaps_to_rgb_and_scales():
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue
    chw = NORM.apply(bgr)
    assert chw.shape == (3, 2, 2) and chw.dtype == np.float32
    np.testing.assert_allclose(chw[2], (255 - 127.5) / 128.0)  # blue is the last RGB channel
    np.testing.assert_allclose(chw[0], -127.5 / 128.0)


def test_spec_round_trips_through_dict():
    spec = _spec(details={"strides": [8, 16, 32]})
    assert spec_from_dict(spec_to_dict(spec)) == spec
