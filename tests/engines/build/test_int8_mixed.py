"""The mixed-precision search: largest layer first, each kept in INT8 only where the judge passes."""

from __future__ import annotations

from collections.abc import Sequence

from facebatch.engines.build.int8_mixed import search_int8_nodes


def test_the_largest_layers_are_tried_first_and_a_failing_one_stays_fp32():
    flops = {"stem": 2.0, "big": 10.0, "fragile": 5.0, "small": 1.0, "reshape": 0.0}
    judged: list[tuple[str, ...]] = []

    def passes(nodes: Sequence[str]) -> bool:
        judged.append(tuple(nodes))
        return "fragile" not in nodes

    search = search_int8_nodes(flops, passes)
    assert judged == [("big",), ("big", "fragile"), ("big", "stem"), ("big", "stem", "small")]
    assert search.int8_nodes == ("big", "stem", "small") and search.steps == 4  # no arithmetic, nothing to try
    assert search.int8_share == 13.0 / 18.0
    assert "3 of the 4 layers tried run in INT8 (72% of the arithmetic)" in search.describe()


def test_a_model_no_layer_of_which_passes_keeps_none():
    search = search_int8_nodes({"a": 1.0, "b": 1.0}, lambda nodes: False)
    assert search.int8_nodes == () and search.int8_share == 0.0 and search.steps == 2
