import numpy as np

from facebatch.configs.spec import TensorSpec
from facebatch.verify.parity import compare_outputs

SPECS = (TensorSpec("a", ("batch", 4)), TensorSpec("b", ("batch", 4)), TensorSpec("c", ("batch", 4)))


def test_all_failures_are_collected_before_deciding():
    ref = {n: np.zeros((2, 4), np.float32) for n in "abc"}
    got = {"a": ref["a"] + 5e-5, "b": ref["b"].copy(), "c": ref["c"].copy()}
    got["b"][1, 2] = 1e-3
    got["c"][0, 0] = np.nan
    report = compare_outputs("t", got, ref, SPECS)
    assert [d.passed for d in report.diffs] == [True, False, False]
    assert report.diffs[1].worst_index == (1, 2)
    assert not report.passed and "2 of 3 outputs differ" in report.summary()


def test_missing_or_misshapen_outputs_fail():
    ref = {n: np.zeros((2, 4), np.float32) for n in "abc"}
    report = compare_outputs("t", {"a": ref["a"], "b": np.zeros((1, 4), np.float32)}, ref, SPECS)
    assert [d.passed for d in report.diffs] == [True, False, False]


def test_cosine_floor_for_embeddings():
    spec = (TensorSpec("e", ("batch", 3), atol=10.0, min_cosine=0.999),)
    ref = {"e": np.array([[1.0, 0.0, 0.0]], np.float32)}
    assert compare_outputs("t", {"e": np.array([[2.0, 0.0, 0.0]], np.float32)}, ref, spec).passed
    assert not compare_outputs("t", {"e": np.array([[0.0, 1.0, 0.0]], np.float32)}, ref, spec).passed


def test_rtol_widens_the_limit_with_the_reference_magnitude():
    spec = (TensorSpec("a", ("batch", 2), atol=1e-4, rtol=1e-3),)
    ref = {"a": np.array([[1000.0, 0.0]], np.float32)}
    assert compare_outputs("t", {"a": np.array([[1000.5, 5e-5]], np.float32)}, ref, spec).passed  # 0.5 <= 1e-4 + 1.0
    report = compare_outputs("t", {"a": np.array([[1000.5, 5e-4]], np.float32)}, ref, spec)  # 5e-4 > 1e-4 + 0
    assert not report.passed and report.diffs[0].outside == 1
    assert "1e-4" not in report.summary() and "0.0001 + 0.001·|ref|" in report.summary()


def test_failure_text_names_what_failed():
    spec = (TensorSpec("e", ("batch", 3), atol=10.0, min_cosine=0.999),)
    ref = {"e": np.array([[1.0, 0.0, 0.0]], np.float32)}
    report = compare_outputs("t", {"e": np.array([[0.0, 1.0, 0.0]], np.float32)}, ref, spec)
    assert "cosine 0.000000000 < 0.999" in report.summary() and ">" not in report.summary().split("cosine")[0]
    missing = compare_outputs("t", {}, ref, spec)
    assert "e missing or misshapen" in missing.summary()


def test_a_gate_loosens_a_tighter_spec_atol_and_never_tightens_a_looser_one():
    """A reference's gate (seeded weights' ``atol``) holds each output to the larger of the two."""
    specs = (TensorSpec("tight", ("batch", 1), atol=1e-5), TensorSpec("loose", ("batch", 1), atol=1e-2))
    ref = {name: np.zeros((1, 1), np.float32) for name in ("tight", "loose")}
    got = {"tight": np.full((1, 1), 1e-3, np.float32), "loose": np.full((1, 1), 5e-3, np.float32)}
    assert not compare_outputs("t", got, ref, specs).passed  # the spec alone: 1e-3 > 1e-5
    report = compare_outputs("t", got, ref, specs, atol=2e-3)
    assert [d.atol for d in report.diffs] == [2e-3, 1e-2]  # loosened; kept (a 2e-3 gate would fail 'loose')
    assert report.passed
