"""FP16 tolerances come from each output's role, travel in the spec, and never tighten."""

import json

import pytest

from facebatch.configs.arcface import arcface_spec
from facebatch.configs.precision import (
    FP16_INDEPENDENCE_ATOL,
    FP16_MIN_COSINE,
    FP16_REGRESSION_ATOL,
    FP16_SCORE_ATOL,
    SEEDED_FP16_FACTOR,
    Precision,
    fp16_tolerances,
    independence_atol,
    output_role,
)
from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.configs.spec_io import spec_from_dict, spec_to_dict
from facebatch.core.errors import SpecError


def detector_spec():
    return scrfd_spec("scrfd_2.5g_bnkps", head_layout(SCRFD_CONFIGS["scrfd_2.5g_bnkps"]), 320, 320)


def test_roles_come_from_the_family_and_the_channels():
    assert [output_role(False, c) for c in (1, 4, 10)] == ["score", "bbox", "kps"]
    assert output_role(True, 512) == "embedding"
    with pytest.raises(SpecError, match="7 channels has no known role"):
        output_role(False, 7)


def test_seeded_weights_get_wider_tolerances_and_the_same_cosine():
    atol, rtol, cosine = fp16_tolerances("embedding")
    seeded = fp16_tolerances("embedding", seeded=True)
    assert seeded == (SEEDED_FP16_FACTOR * atol, SEEDED_FP16_FACTOR * rtol, cosine) and cosine == FP16_MIN_COSINE
    with pytest.raises(SpecError, match="no FP16 tolerance"):
        fp16_tolerances("mask")


def test_a_detector_spec_at_fp16_holds_each_output_to_its_role():
    spec = detector_spec().at_fp16()
    assert spec.precision is Precision.FP16
    by_name = {t.name: t for t in spec.outputs}
    assert by_name["score_8"].atol == FP16_SCORE_ATOL and by_name["score_8"].rtol == 0.0
    assert by_name["bbox_32"].atol == FP16_REGRESSION_ATOL and by_name["kps_16"].rtol > 0
    assert [t.dims for t in spec.outputs] == [t.dims for t in detector_spec().outputs]  # only tolerances change


def test_an_embedder_spec_at_fp16_keeps_a_cosine_floor_and_never_tightens():
    fp32 = arcface_spec("arcface_r50")
    fp16 = fp32.at_fp16()
    (out32,), (out16,) = fp32.outputs, fp16.outputs
    assert out16.min_cosine == FP16_MIN_COSINE and out16.atol >= out32.atol and out16.rtol >= out32.rtol
    with pytest.raises(SpecError, match="already fp16"):
        fp16.at_fp16()


def test_precision_round_trips_and_older_specs_read_as_fp32():
    spec = detector_spec().at_fp16(seeded=True)
    data = json.loads(json.dumps(spec_to_dict(spec)))
    assert spec_from_dict(data) == spec
    del data["precision"]  # written before FP16 artifacts existed
    assert spec_from_dict(data).precision is Precision.FP32


def test_batch_independence_is_held_to_the_precision():
    assert independence_atol(Precision.FP32) == 1e-5
    assert independence_atol(Precision.FP16) == FP16_INDEPENDENCE_ATOL
    assert Precision.parse("FP16") is Precision.FP16
    with pytest.raises(SpecError, match="unknown precision 'int4'"):
        Precision.parse("int4")


def test_int8_specs_carry_their_own_tolerances():
    from facebatch.configs.arcface import arcface_spec
    from facebatch.configs.precision import (
        INT8_DECODED_LANDMARK_ATOL_PX,
        INT8_INDEPENDENCE_ATOL,
        INT8_MIN_COSINE,
        Precision,
        decoded_tolerances,
        independence_atol,
    )

    spec = arcface_spec("arcface_r50").at_int8()
    assert spec.precision is Precision.INT8 and spec.outputs[0].min_cosine == INT8_MIN_COSINE
    assert arcface_spec("arcface_r50").at_int8(min_cosine=0.95).outputs[0].min_cosine == 0.95
    assert independence_atol(Precision.INT8) == INT8_INDEPENDENCE_ATOL and Precision.parse("INT8") is Precision.INT8
    assert (
        decoded_tolerances(Precision.INT8)[2] == INT8_DECODED_LANDMARK_ATOL_PX > decoded_tolerances(Precision.FP16)[2]
    )
    with pytest.raises(SpecError, match="is int8; quantise the FP32 artifact"):
        spec.at_int8()
