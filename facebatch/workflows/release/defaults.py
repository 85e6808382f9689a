"""What a release runs unless told otherwise, and the gates it may be told to require; free of
heavy imports (the command line reads it for --help)."""

from __future__ import annotations

import re
from pathlib import Path

RELEASE_OUT = Path("build/release")
RELEASE_NAME = "facebatch-models"
RELEASE_BENCH_BATCH_SIZES = (1, 8, 32)
RELEASE_BACKENDS = ("ort-cpu", "openvino")
RELEASE_BENCH_WARMUP_S = 0.5
RELEASE_BENCH_SECONDS = 1.0
# What --require takes: gates a release may skip (no TensorRT, no baseline, …) unless it requires them. Export and verify
# are always required.
REQUIRABLE = {
    "engines": ("tensorrt engines", "engine "),
    "fp16": ("fp16 ",),
    "int8": ("int8 ",),
    "bench": ("bench",),
    "performance": ("performance",),
    "triton": ("triton repository",),
}
# --manifest-sha256: the MANIFEST.json sha256 'facebatch release' prints, any case
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
