"""The reference detection pipeline on images: letterbox → any SCRFD ONNX → decode → NMS →
original-image pixels, the way insightface's ``SCRFD.detect`` does it.

Works on our batch artifacts (one batched run) and on batch-1 files such as the official
packs (one run per image), whatever their output names or layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from facebatch.configs.scrfd import SCRFD_NORMALIZE
from facebatch.configs.spec import HeadLayout, Normalize
from facebatch.engines.pipeline.preprocess import letterboxed_blob
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections, decode_frame, limit_faces
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs
from facebatch.engines.runners.base import Runner


def per_frame(named: Mapping[str, np.ndarray], frame: int) -> dict[str, np.ndarray]:
    """``{"score_8": [N, rows, 1], …}`` → frame ``frame``'s ``{"score_8": [rows, 1], …}``."""
    return {name: array[frame] for name, array in named.items()}


def detector_input(
    image: np.ndarray, input_size: tuple[int, int], normalize: Normalize = SCRFD_NORMALIZE
) -> tuple[np.ndarray, float]:
    """One BGR image → its letterboxed, normalised CHW frame and the scale back to its pixels."""
    return letterboxed_blob(image, *input_size, normalize)


def batch_limit(runner: Runner, wanted: int) -> int:
    """How many frames one call may take: ``wanted``, or 1 for a graph whose batch is fixed to 1
    (the official packs)."""
    (source,) = runner.inputs  # a detector or an embedder has one input
    fixed = source.shape[0] if isinstance(source.shape[0], int) and source.shape[0] > 0 else None
    return fixed if fixed is not None else max(1, wanted)


def detector_outputs(
    runner: Runner, frames: np.ndarray, layout: HeadLayout, input_size: tuple[int, int]
) -> tuple[list[dict[str, np.ndarray]], float]:
    """Prepared frames [N, 3, H, W] → each frame's raw outputs in our layout, and the seconds
    the runtime took: one call for the lot, or one per frame for a batch-1 graph."""
    height, width = input_size
    (source,) = runner.inputs
    step = batch_limit(runner, len(frames))
    named: list[dict[str, np.ndarray]] = []
    runtime = 0.0
    for start in range(0, len(frames), step):
        chunk = frames[start : start + step]
        raw = runner.infer({source.name: chunk})
        runtime += runner.last_inference_seconds or 0.0
        outputs = canonical_outputs(list(raw.values()), layout, height, width, len(chunk))
        named += [per_frame(outputs, i) for i in range(len(chunk))]
    return named, runtime


def decode_detections(
    named: Sequence[Mapping[str, np.ndarray]],
    scales: Sequence[float],
    image_sizes: Sequence[tuple[int, int]],
    layout: HeadLayout,
    input_size: tuple[int, int],
    det_thresh: float = DET_THRESH,
    nms_thresh: float = NMS_THRESH,
    max_num: int = 0,
) -> list[Detections]:
    """Each frame's raw outputs → its faces in its image's pixels (decode, NMS, ``max_num``)."""
    height, width = input_size
    faces = []
    for scale, image_size, outputs in zip(scales, image_sizes, named, strict=False):
        found = decode_frame(outputs, layout, height, width, det_thresh, nms_thresh).scaled(scale)
        faces.append(limit_faces(found, max_num, image_size))
    return faces


def detect_faces(
    runner: Runner,
    images: Sequence[np.ndarray],
    layout: HeadLayout,
    input_size: tuple[int, int],
    normalize: Normalize = SCRFD_NORMALIZE,
    det_thresh: float = DET_THRESH,
    nms_thresh: float = NMS_THRESH,
    max_num: int = 0,
) -> list[Detections]:
    """BGR uint8 images → one ``Detections`` per image, in that image's pixels."""
    prepared = [detector_input(image, input_size, normalize) for image in images]
    frames = np.stack([frame for frame, _ in prepared])
    scales = [scale for _, scale in prepared]
    named, _ = detector_outputs(runner, frames, layout, input_size)
    sizes = [image.shape[:2] for image in images]
    return decode_detections(named, scales, sizes, layout, input_size, det_thresh, nms_thresh, max_num)
