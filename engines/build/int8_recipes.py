"""The ways ``facebatch quantize`` can quantise (engines/build/int8.py measures why each exists),
and the candidates it tries on each CPU class; free of heavy imports (the command line lists them)."""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = "uint8"


@dataclass(frozen=True)
class Int8Recipe:
    """One way to quantise: how the weights are stored, and what stays FP32."""

    name: str
    weights: str = "int8"  # int8 (u8·s8 kernels) or uint8 (u8·u8)
    reduce_range: bool = False  # 7-bit weights: AVX2's 16-bit sums of u8·s8 pairs cannot saturate
    input_convs_fp32: bool = False  # the convolutions that read the network input stay FP32
    mixed: bool = False  # only the layers a search chose run in INT8, the others stay FP32 (mixed_recipe)

    def describe(self) -> str:
        bits = "7-bit" if self.reduce_range else "8-bit"
        kept = ", the convolutions reading the input kept FP32" if self.input_convs_fp32 else ""
        if self.mixed:
            kept = ", the layers the accuracy gate needs kept FP32"
        return f"{self.name}: {self.weights} weights ({bits}), {ACTIVATIONS} activations{kept}"


def mixed_recipe(base: Int8Recipe) -> Int8Recipe:
    """``base``'s storage, with INT8 only where a search finds the gate still passes."""
    storage = ("u8u8" if base.weights == "uint8" else "u8s8") + ("-7bit" if base.reduce_range else "")
    return Int8Recipe(f"{storage}-mixed", base.weights, base.reduce_range, mixed=True)


RECIPES = {
    r.name: r
    for r in (
        Int8Recipe("u8s8"),
        Int8Recipe("u8s8-input-fp32", input_convs_fp32=True),
        Int8Recipe("u8s8-7bit", reduce_range=True),
        Int8Recipe("u8u8", weights="uint8"),
    )
}
# The candidates quantize tries on each CPU class (facebatch.core.environment.int8_cpu_class), most accurate kept.
RECIPES_FOR_CPU = {
    "vnni": ("u8s8", "u8s8-input-fp32"),
    "avx2": ("u8u8", "u8s8-input-fp32"),
    "baseline": ("u8u8", "u8s8-input-fp32"),
}
