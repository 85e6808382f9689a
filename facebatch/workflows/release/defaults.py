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
# The accuracy floor (accuracy_floor) every released twin (FP16, INT8, TensorRT engine) is held to against its FP32
# source on the release's photos. Measured on the fixtures (17 photos, 20 hand-labelled faces; SCRFD-2.5G at 640 and
# mobilefacenet_128d, this machine's INT8 recipe):
# recall: the share of the hand-labelled faces FP32 finds that a twin still finds. FP16 and INT8 keep 20 of 20.
FLOOR_RECALL = 1.0
# landmark_px: the mean landmark error of the faces a twin and FP32 both find, in pixels (photo coordinates).
# FP16 0.008 px mean (max 0.05); INT8 0.55 px mean (max 2.96): 2 px leaves room for another CPU class's INT8 kernels.
FLOOR_LANDMARK_PX = 2.0
# missed: the share of FP32's faces a twin does not find (what holds where the photos have no hand labels). FP16 and
# INT8 miss 0 of 188; an INT8 forced through with a bad calibration (two photos without faces) 156 of 188.
FLOOR_MISSED = 0.05
# cosine: every face's cosine to its FP32 embedding (188 aligned faces); the INT8 mobilefacenet_128d
# min 0.951 (quantize refuses it too: the same 0.99, configs.precision.INT8_MIN_COSINE). FP16 min 0.9998.
FLOOR_COSINE = 0.99
# pairs: the share of FP32's same/different-pair accuracy a twin keeps (photos NAME_1/NAME_2: 3 same and 12 different
# pairs, at the match threshold 0.35). FP32, FP16 and INT8 all 15 of 15.
FLOOR_PAIRS = 1.0
ACCURACY_FLOOR = {
    "recall": FLOOR_RECALL,
    "landmark_px": FLOOR_LANDMARK_PX,
    "missed": FLOOR_MISSED,
    "cosine": FLOOR_COSINE,
    "pairs": FLOOR_PAIRS,
}
# --manifest-sha256: the MANIFEST.json sha256 'facebatch release' prints, any case
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
