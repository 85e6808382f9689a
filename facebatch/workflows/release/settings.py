"""What a release runs unless told otherwise, and the gates it may be told to require; free of
heavy imports (the command line reads it for --help)."""

from __future__ import annotations

RELEASE_BENCH_BATCH_SIZES = (1, 8, 32)
RELEASE_BACKENDS = ("ort-cpu", "openvino")
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
