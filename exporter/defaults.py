"""The export's defaults and the ranges it accepts, with their checks.

Kept free of torch and onnx so that the command line can build its parser (and say these
defaults and ranges in ``--help``) without paying for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from facebatch.core.errors import SpecError

DEFAULT_OPSET = 17
OPSET_RANGE = (13, 23)  # what torch's dynamo exporter writes and onnxruntime runs
PARITY_BATCH_SIZES = (1, 2, 7, 32)
DEFAULT_OUT_DIR = Path("build/onnx")


def check_opset(opset: int) -> None:
    low, high = OPSET_RANGE
    if not low <= opset <= high:
        raise SpecError(
            f"opset {opset} is outside the supported range {low}–{high} (default {DEFAULT_OPSET})", field="opset"
        )


def check_parity_batch_sizes(sizes: Sequence[int]) -> None:
    if not sizes or min(sizes) < 1:
        raise SpecError("parity batch sizes must be positive integers, e.g. 1,2,7,32", field="parity_batch_sizes")
