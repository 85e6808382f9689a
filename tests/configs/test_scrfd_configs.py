import pytest

from facebatch.configs.scrfd import SCRFD_CONFIGS, check_input_size, head_layout, scrfd_config, scrfd_spec
from facebatch.core.errors import SpecError

# Parameter counts of the insightface configs (as insightface's detection/scrfd README lists them).
PUBLISHED_PARAMS_M = {
    "scrfd_500m": 0.573,
    "scrfd_500m_bnkps": 0.631,
    "scrfd_1g": 0.636,
    "scrfd_1gbn": 0.679,
    "scrfd_1.3g": 0.435,
    "scrfd_2.5g": 0.672,
    "scrfd_2.5g_bnkps": 0.820,
    "scrfd_10g": 3.860,
    "scrfd_10g_bnkps": 4.230,
    "scrfd_34g": 9.803,
}


def test_every_variant_has_a_published_count_and_a_test():
    assert set(PUBLISHED_PARAMS_M) == set(SCRFD_CONFIGS)


def test_issue_variants_are_all_present():
    for name in (
        "scrfd_500m",
        "scrfd_500m_bnkps",
        "scrfd_1g",
        "scrfd_1gbn",
        "scrfd_2.5g",
        "scrfd_2.5g_bnkps",
        "scrfd_10g",
        "scrfd_10g_bnkps",
        "scrfd_34g",
    ):
        assert name in SCRFD_CONFIGS


def test_unknown_variant_suggests_close_names():
    with pytest.raises(SpecError, match="did you mean scrfd_10g_bnkps"):
        scrfd_config("scrfd_10g_bnks")


@pytest.mark.parametrize("size", [(300, 320), (320, 0), (-32, 32)])
def test_sizes_must_be_multiples_of_32(size):
    with pytest.raises(SpecError, match="multiple of 32"):
        check_input_size(*size)


def test_spec_of_default_detector():
    spec = scrfd_spec("scrfd_10g_bnkps", head_layout(SCRFD_CONFIGS["scrfd_10g_bnkps"]), 320, 320)
    assert spec.default_filename == "scrfd_10g_320_batch.onnx"
    assert spec.input.name == "input.1" and spec.input.dims == ("batch", 3, 320, 320)
    assert spec.output_names == [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    assert spec.output("bbox_8").dims == ("batch", 40 * 40 * 2, 4)
    assert spec.output("kps_32").dims == ("batch", 10 * 10 * 2, 10)
    assert spec.head is not None and spec.head.strides == (8, 16, 32) and spec.head.anchors_per_location == 2
    assert spec.input_size == (320, 320) and not spec.dynamic_size and spec.size_multiple == 32
    seeded = scrfd_spec("scrfd_10g_bnkps", head_layout(SCRFD_CONFIGS["scrfd_10g_bnkps"]), 320, 320, seeded=True)
    assert seeded.default_filename == "scrfd_10g_320_seeded_batch.onnx"  # seeded weights are never named like real ones


def test_spec_without_landmarks_and_with_dynamic_size():
    spec = scrfd_spec("scrfd_500m", head_layout(SCRFD_CONFIGS["scrfd_500m"]), 640, 480, dynamic_size=True)
    assert spec.output_names == ["score_8", "score_16", "score_32", "bbox_8", "bbox_16", "bbox_32"]
    assert spec.input.dims == ("batch", 3, "height", "width")
    assert spec.output("score_16").dims == ("batch", "rows_16", 1)
    assert spec.default_filename == "scrfd_500m_nokps_dyn_batch.onnx"
