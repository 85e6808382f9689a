"""The reference detection pipeline on images: letterbox → any SCRFD ONNX → decode → NMS →
original-image pixels, the way insightface's ``SCRFD.detect`` does it (facts §4.2–4.4).

Works on our batch artifacts (one batched run) and on batch-1 files such as the official
packs (one run per image), whatever their output names or layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from facebatch.configs.scrfd import SCRFD_NORMALIZE
from facebatch.configs.spec import HeadLayout, Normalize
from facebatch.engines.pipeline.preprocess import letterbox
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections, decode_frame, limit_faces
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs
from facebatch.engines.runners.base import Runner


def per_frame(named: Mapping[str, np.ndarray], frame: int) -> dict[str, np.ndarray]:
    """``{"score_8": [N, rows, 1], …}`` → frame ``frame``'s ``{"score_8": [rows, 1], …}``."""
    return {name: array[frame] for name, array in named.items()}


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
    height, width = input_size
    (source,) = runner.inputs  # a detector has one input
    boxed = [letterbox(image, height, width) for image in images]
    blob = np.stack([normalize.apply(canvas) for canvas, _ in boxed])
    batch_fixed_to_one = source.shape[0] == 1
    chunks = [blob[i : i + 1] for i in range(len(blob))] if batch_fixed_to_one else [blob]
    named: list[dict[str, np.ndarray]] = []
    for chunk in chunks:
        raw = runner.infer({source.name: chunk})
        outputs = canonical_outputs(list(raw.values()), layout, height, width, len(chunk))
        named += [per_frame(outputs, i) for i in range(len(chunk))]
    faces = []
    for image, (_, scale), outputs in zip(images, boxed, named):
        found = decode_frame(outputs, layout, height, width, det_thresh, nms_thresh).scaled(scale)
        faces.append(limit_faces(found, max_num, image.shape[:2]))
    return faces
