"""engines/build/int8.py on a real artifact of ours (SCRFD-500M at 64×64)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.build.int8 import _caches, quantize_to_int8
from facebatch.engines.build.int8_recipes import RECIPES, mixed_recipe
from facebatch.engines.pipeline.preprocess import proof_frames


@pytest.mark.skipif(not _caches(), reason="this onnxruntime's quantize_static keeps no calibration cache")
def test_candidates_that_share_the_calibration_cache_equal_those_calibrated_afresh(
    small_detector: Path, photos: list[Path], tmp_path: Path
):
    model = read_model_file(small_detector)
    frames = proof_frames(4, 64, 64, model.spec.normalize, photos)
    cache = tmp_path / "ranges.json"
    full, mixed = RECIPES["u8s8"], mixed_recipe(RECIPES["u8s8"])
    convs = [n.name for n in model.model.graph.node if n.op_type == "Conv"][:3]

    first = quantize_to_int8(small_detector, model.spec, frames, recipe=full, calibration_cache=cache)
    assert cache.is_file()  # the first candidate calibrated and kept the ranges
    # the others read them: a different recipe and a mixed one come out byte for byte as if calibrated themselves
    for recipe, nodes in ((RECIPES["u8s8-input-fp32"], ()), (mixed, convs)):
        shared = quantize_to_int8(
            small_detector, model.spec, frames, recipe=recipe, int8_nodes=nodes, calibration_cache=cache
        )
        fresh = quantize_to_int8(small_detector, model.spec, frames, recipe=recipe, int8_nodes=nodes)
        assert shared.model.SerializeToString() == fresh.model.SerializeToString()
    assert (
        first.model.SerializeToString()
        == quantize_to_int8(small_detector, model.spec, frames, recipe=full).model.SerializeToString()
    )
