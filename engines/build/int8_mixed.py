"""Mixed precision: which layers can run in INT8 while the accuracy gate still passes.

Per-tensor 8-bit activations cost a MobileNet-style embedder more than its gate allows
(mobilefacenet_128d wholly in INT8: min cosine to FP32 0.945 on the fixture faces, against 0.99),
and no single layer is to blame: left FP32 one at a time, none of its 51 convolutions lifts the
minimum by more than 0.012. The search therefore builds the INT8 set up instead of pruning it:
the layers by arithmetic, largest first, each kept in INT8 if the model still passes with it.
On mobilefacenet_128d that puts 80 % of the arithmetic (35 of 51 convolutions) in INT8 at min
cosine 0.992; OpenVINO runs it 1.5x faster than FP32, onnxruntime 1.0-1.5x from one run to the
next (its conversions at every FP32/INT8 boundary cost what its integer kernels gain when the
machine is slow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from facebatch.core.progress import progress_bar


@dataclass(frozen=True)
class MixedSearch:
    int8_nodes: tuple[str, ...]  # in the order they were taken
    int8_share: float  # of the model's counted FLOPs
    steps: int  # models quantised and judged

    def describe(self) -> str:
        return (
            f"{len(self.int8_nodes)} of the {self.steps} layers tried run in INT8 "
            f"({self.int8_share:.0%} of the arithmetic); the others stay FP32"
        )


def search_int8_nodes(flops: Mapping[str, float], passes: Callable[[Sequence[str]], bool]) -> MixedSearch:
    """Greedy, largest layer first: each layer joins the INT8 set if ``passes`` (quantise those
    layers, judge the model) says the model still passes with it."""
    order = sorted((name for name, f in flops.items() if f > 0), key=lambda name: -flops[name])
    chosen: list[str] = []
    with progress_bar(len(order), "search the layers that can run in INT8") as advance:
        for name in order:
            if passes([*chosen, name]):
                chosen.append(name)
            advance(f"{name}: {'INT8' if chosen and chosen[-1] == name else 'FP32'}")
    total = sum(flops.values()) or 1.0
    return MixedSearch(tuple(chosen), sum(flops[n] for n in chosen) / total, len(order))
