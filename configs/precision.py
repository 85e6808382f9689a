"""The arithmetic an artifact computes in, and what each precision is held to.

FP32 artifacts are held to ``fp32_tolerances`` against their reference (the file weights were
imported from, the torch model, another ONNX) and to 1e-5 between a frame alone and inside a
batch. An element passes when |actual − expected| ≤ atol + rtol·|expected|:

* scores (sigmoid probabilities): atol 1e-4. Measured (torch fp32 against fp64 and against the
  source file, on the fixture photos, real SCRFD-500M and SCRFD-2.5G weights at 320 and 640):
  at most 1.9e-6 on a 2-core AMD EPYC with AVX2 only; 50 times below the bound.
* boxes and landmarks (distances in stride units, up to ±8 on the fixture photos and tens on
  faces that fill the frame): atol 1e-4 + rtol 1e-4. float32 accumulation error grows with the
  value: torch fp32 vs fp64 reached 1.9e-4 absolute (SCRFD-2.5G at 640, bbox_32, AVX2; onnxruntime
  against fp64 1.1e-5), i.e. 1e-4 + 2.1e-5·|value|; an absolute 1e-4 alone failed good weights.
  The bound still fails one real mistake: a single output channel of one backbone conv scaled
  by 1.01 (diff ≥ 2.9e-3), one weight zeroed, two channels swapped, every BN eps 1e-3 instead of
  1e-5 — each measured on SCRFD-2.5G at 640 and each outside it (tests/exporter/weights/test_scrfd_import.py).
* embeddings: atol 1e-4 + rtol 1e-4, and cosine ≥ 0.99999 per row.

An FP16 artifact carries FP16 tolerances in its own spec,
set by ``fp16_tensor`` from each output's role, because FP16's error is a property of the
number format and the network's depth, not of the batch:

* FP16 keeps 11 significant bits: unit roundoff u = 2**-11 ≈ 4.9e-4. Measured on ONNX
  converted by ``engines.build.fp16`` against its FP32 source (onnxruntime CPU, 32 frames:
  the fixture photos, then noise), trained weights differ by at most 1e-3 in scores and
  0.031 (SCRFD-2.5G at 640) to 0.065 (SCRFD-500M at 64, a background anchor) in stride
  units in boxes and landmarks; seeded random weights, far less well conditioned, by 0.016
  and 0.11 (SCRFD-10G); embeddings by 0.012 (ArcFace R50 seeded, cosine ≥ 0.999998) and 0.032
  (mobilefacenet_128d, real weights, elements up to 3.05, row norms 7.8–13.6; cosine ≥ 0.99987).
  docs/fp16.md has the tables.
* Raw outputs pass when |fp16 − fp32| ≤ atol + rtol·|fp32|, with the tolerances below:
  1.5 to 3 times the worst trained-weight error (ten times for scores), and
  ``SEEDED_FP16_FACTOR`` times that for seeded weights (the margin FP32's seeded gate uses).
* What users see is held by meaning rather than by element: decoded detections (the same
  faces, IoU ≥ 0.95, scores within 1e-2, landmarks within 1 px) and embeddings (cosine ≥
  0.999 per row). Seeded weights detect nothing (thousands of random boxes per frame that
  tie in NMS), so for them only the raw tolerances judge.
* A frame inside a batch must equal it alone to within ``FP16_INDEPENDENCE_ATOL``: FP16
  kernels may differ per batch size on a GPU, while mixed frames differ by orders more.
"""

from __future__ import annotations

from enum import Enum

from facebatch.core.errors import SpecError


class Precision(str, Enum):
    """The value is what files, metadata and reports say."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # ``facebatch quantize``: QDQ, 8-bit weights and activations, calibrated on photos

    @classmethod
    def parse(cls, text: str) -> Precision:
        try:
            return cls(text.lower())
        except ValueError:
            raise SpecError(f"unknown precision {text!r}; known: {', '.join(p.value for p in cls)}") from None


# Raw-output tolerances of FP32 artifacts by output role (see the module docstring).
FP32_SCORE_ATOL = 1e-4
FP32_REGRESSION_ATOL = 1e-4  # boxes and landmarks, in stride units
FP32_REGRESSION_RTOL = 1e-4
FP32_EMBEDDING_ATOL = 1e-4
FP32_EMBEDDING_RTOL = 1e-4
FP32_MIN_COSINE = 0.99999

# Raw-output tolerances of FP16 artifacts by output role (see the module docstring).
FP16_SCORE_ATOL = 0.01  # probabilities
FP16_REGRESSION_ATOL = 0.1  # boxes and landmarks, in stride units
FP16_RTOL = 0.008  # ≈ 16 u: large distances and embedding values
FP16_EMBEDDING_ATOL = 0.1  # 3 × mobilefacenet_128d's 0.032; the embedding's direction is held by FP16_MIN_COSINE
SEEDED_FP16_FACTOR = 4.0
FP16_MIN_COSINE = 0.999
FP32_INDEPENDENCE_ATOL = 1e-5  # a frame alone vs inside a batch, onnxruntime CPU
FP16_INDEPENDENCE_ATOL = 1e-2

# A reduced-precision detector's raw boxes and landmarks are judged only at anchors that score at least this on either
# side: mmdet's evaluation threshold (score_thr 0.02 in every released SCRFD config), the lowest any SCRFD reference code decodes at, and 25
# times below insightface's 0.5. Below it a box never becomes a face, and FP16 moves background boxes by up to 0.16 stride
# units (SCRFD-500M at 320, fixture photos) while the decoded faces stay the same. Scores are judged everywhere.
SCORING_ANCHOR_FLOOR = 0.02

# Decoded detections of a reduced-precision artifact against its FP32 reference.
DECODED_MIN_IOU = 0.95
DECODED_SCORE_ATOL = 1e-2
DECODED_LANDMARK_ATOL_PX = 1.0


def output_role(embedder: bool, channels: int | str) -> str:
    """What an output holds: an embedder's one output is its embedding; an SCRFD output is
    told by its channels (1 score, 4 box distances, 10 landmark offsets)."""
    if embedder:
        return "embedding"
    roles = {1: "score", 4: "bbox", 10: "kps"}
    if channels not in roles:
        raise SpecError(f"an SCRFD output with {channels} channels has no known role (1 score, 4 bbox, 10 kps)")
    return roles[channels]


def fp32_tolerances(role: str) -> tuple[float, float, float | None]:
    """(atol, rtol, min_cosine) of an FP32 output by its role: score, bbox, kps or embedding."""
    if role == "score":
        return FP32_SCORE_ATOL, 0.0, None
    if role in ("bbox", "kps"):
        return FP32_REGRESSION_ATOL, FP32_REGRESSION_RTOL, None
    if role == "embedding":
        return FP32_EMBEDDING_ATOL, FP32_EMBEDDING_RTOL, FP32_MIN_COSINE
    raise SpecError(f"no FP32 tolerance for an output of role {role!r}")


def fp16_tolerances(role: str, seeded: bool = False) -> tuple[float, float, float | None]:
    """(atol, rtol, min_cosine) of an FP16 output by its role: score, bbox, kps or embedding;
    seeded weights get ``SEEDED_FP16_FACTOR`` times the atol and rtol."""
    factor = SEEDED_FP16_FACTOR if seeded else 1.0
    if role == "score":
        return factor * FP16_SCORE_ATOL, 0.0, None
    if role in ("bbox", "kps"):
        return factor * FP16_REGRESSION_ATOL, factor * FP16_RTOL, None
    if role == "embedding":
        return factor * FP16_EMBEDDING_ATOL, factor * FP16_RTOL, FP16_MIN_COSINE
    raise SpecError(f"no FP16 tolerance for an output of role {role!r}")


# Raw-output tolerances of INT8 artifacts against their FP32 source. An 8-bit activation step is
# 1/255 of a tensor's calibrated range, and the error of a deep network is a few such steps, so
# raw outputs are held loosely; what users see is held by ``facebatch quantize``'s accuracy gate
# (the same faces found, recall on labelled faces, embedding cosine ≥ INT8_MIN_COSINE).
# Measured, SCRFD-2.5G at 640 on the 17 fixture photos (+ noise frames), against FP32, at anchors scoring >= 0.02:
# scores within 0.038, boxes/landmarks up to 1.7 stride units (AVX2, recipe u8s8-input-fp32); 1.96 everywhere on VNNI.
INT8_SCORE_ATOL = 0.1
INT8_REGRESSION_ATOL = 2.5  # stride units
INT8_RTOL = 0.1
# INT8 embeddings are held by their cosine; elements move with the embedding's scale (mobilefacenet_128d's raw
# outputs by up to 0.42 at cosine 0.95), so the elementwise bound only catches a broken graph
INT8_EMBEDDING_ATOL = 1.0
INT8_EMBEDDING_RTOL = 0.5
INT8_MIN_COSINE = 0.99
INT8_INDEPENDENCE_ATOL = 1e-2  # integer kernels, static scales: a frame alone equals it in a batch but for rounding


# Decoded detections of an INT8 artifact against its FP32 source (SCRFD-2.5G at 640 on the fixture photos, network-input
# pixels: VNNI matched faces' IoU >= 0.90, landmarks within 2.07 px; AVX2 (u8s8-input-fp32) IoU >= 0.776 on one 15 px face
# of the selfie, matched by its edges (within 1.7 px), landmarks within 1.25 px, scores within 0.038).
INT8_DECODED_MIN_IOU = 0.85
INT8_DECODED_SCORE_ATOL = 0.05
INT8_DECODED_LANDMARK_ATOL_PX = 3.0


# What a model computing in bfloat16 on OpenVINO (FP32 weights, 8-bit mantissa, unit roundoff 2**-8) is held to against
# the same model in FP32 on the same photos, by meaning only (raw outputs move with the rounding of every layer): every
# FP32 face found again at IoU >= BF16_DECODED_MIN_IOU with landmarks within BF16_DECODED_LANDMARK_ATOL_PX (photo
# pixels), no hand-labelled face lost, and embeddings at cosine >= BF16_MIN_COSINE per face, pairs ordered as in FP32.
# docs/bf16.md has the measured figures.
BF16_DECODED_MIN_IOU = 0.95
BF16_DECODED_LANDMARK_ATOL_PX = 2.0
BF16_MIN_COSINE = 0.999


def decoded_tolerances(precision: Precision) -> tuple[float, float, float]:
    """(min IoU, score atol, landmark atol in px) for decoded faces against the FP32 reference."""
    if precision is Precision.INT8:
        return INT8_DECODED_MIN_IOU, INT8_DECODED_SCORE_ATOL, INT8_DECODED_LANDMARK_ATOL_PX
    return DECODED_MIN_IOU, DECODED_SCORE_ATOL, DECODED_LANDMARK_ATOL_PX


def int8_tolerances(role: str) -> tuple[float, float, float | None]:
    """(atol, rtol, min_cosine) of an INT8 output by its role."""
    if role == "score":
        return INT8_SCORE_ATOL, 0.0, None
    if role in ("bbox", "kps"):
        return INT8_REGRESSION_ATOL, INT8_RTOL, None
    if role == "embedding":
        return INT8_EMBEDDING_ATOL, INT8_EMBEDDING_RTOL, INT8_MIN_COSINE
    raise SpecError(f"no INT8 tolerance for an output of role {role!r}")


def independence_atol(precision: Precision) -> float:
    """How far a frame inside a batch may be from the same frame alone (check 1)."""
    return {Precision.FP16: FP16_INDEPENDENCE_ATOL, Precision.INT8: INT8_INDEPENDENCE_ATOL}.get(
        precision, FP32_INDEPENDENCE_ATOL
    )
