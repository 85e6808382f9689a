import numpy as np
import pytest

from facebatch.configs.arcface import arcface_spec
from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.configs.spec import Family, HeadLayout, ModelSpec, Normalize, ShapeRange, TensorSpec
from facebatch.configs.spec_io import spec_from_dict, spec_to_dict
from facebatch.core.errors import SpecError

NORM = Normalize((127.5, 127.5, 127.5), (128.0, 128.0, 128.0), rgb=True)
HEAD = HeadLayout((8, 16, 32), 2, True)


def _spec(**kw) -> ModelSpec:
    defaults = dict(
        name="m",
        family=Family.SCRFD,
        inputs=(TensorSpec("input.1", ("batch", 3, "height", "width")),),
        outputs=(TensorSpec("score_8", ("batch", "rows_8", 1)),),
        normalize=NORM,
        input_size=(320, 320),
        head=HEAD,
    )
    defaults.update(kw)
    return ModelSpec(**defaults)


def test_dynamic_axes_are_derived_from_dims():
    spec = _spec()
    assert spec.dynamic_axes() == {
        "input.1": {0: "batch", 2: "height", 3: "width"},
        "score_8": {0: "batch", 1: "rows_8"},
    }
    assert spec.input.concrete_shape({"batch": 4, "height": 64, "width": 32}) == (4, 3, 64, 32)


def test_spec_refuses_tensors_without_leading_batch_and_duplicate_names():
    with pytest.raises(SpecError, match="must have 'batch' as dim 0"):
        _spec(outputs=(TensorSpec("x", (1, "batch")),))
    with pytest.raises(SpecError, match="used twice"):
        _spec(outputs=(TensorSpec("input.1", ("batch", 1)),))


def test_the_family_decides_which_typed_fields_a_spec_needs():
    assert _spec(family="scrfd").family is Family.SCRFD  # the file's word becomes the enum
    assert _spec().size_multiple == 32
    with pytest.raises(SpecError, match="head layout and nothing else does"):
        _spec(head=None)
    with pytest.raises(SpecError, match="needs its embedding size"):
        _spec(family=Family.EMBEDDER, head=None)
    with pytest.raises(SpecError, match="input size must be two positive numbers"):
        _spec(input_size=(0, 320))
    assert Family.ARCFACE.is_embedder and Family.EMBEDDER.is_embedder and not Family.SCRFD.is_embedder


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


@pytest.mark.parametrize(
    "spec",
    [
        scrfd_spec("scrfd_10g_bnkps", head_layout(SCRFD_CONFIGS["scrfd_10g_bnkps"]), 320, 480, dynamic_size=True),
        arcface_spec("mbf", 128, seeded=True),
    ],
    ids=["scrfd", "arcface"],
)
def test_specs_round_trip_through_dict_with_every_typed_field(spec: ModelSpec):
    back = spec_from_dict(spec_to_dict(spec))
    assert back == spec and back.descriptions == spec.descriptions
    assert (
        back.head == spec.head
        and back.alignment_template == spec.alignment_template
        and back.input_size == spec.input_size
    )


def test_a_spec_from_an_older_facebatch_is_refused_by_name():
    old = spec_to_dict(_spec())
    del old["format"]
    with pytest.raises(SpecError, match="written by an older facebatch .* re-export"):
        spec_from_dict(old)


def test_head_layout_rows_and_names():
    assert HEAD.rows(8, 320, 320) == 40 * 40 * 2 and HEAD.size_multiple == 32
    assert HEAD.output_names()[:3] == ["score_8", "score_16", "score_32"] and HEAD.output_names()[-1] == "kps_32"
    assert HeadLayout((8, 16, 32), 2, False).kinds == ("score", "bbox")
