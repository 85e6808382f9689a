"""The stages of one batch, on photos already prepared: detect (one detector call per batch of
frames), align (the transforms of all faces of the batch in one estimate, each face warped from the
decode it needs) and embed (the faces of all photos of the batch together, L2-normalised). Each
adds its busy seconds to the caller's ``StageTimes``."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from facebatch.configs.spec import ModelSpec
from facebatch.engines.pipeline.align import similarity_transforms, transform_scale, warp_faces
from facebatch.engines.pipeline.face_detect import decode_detections, detector_outputs
from facebatch.engines.pipeline.image_faces import StageTimes
from facebatch.engines.pipeline.options import FaceModels, PipelineOptions
from facebatch.engines.pipeline.preprocess import blob_from_images, on_reduced_image
from facebatch.engines.pipeline.reader import PreparedPhoto
from facebatch.engines.pipeline.scrfd_decode import Detections
from facebatch.engines.runners.base import Runner

# with reduced_decode, a face is warped from the reduced image when its crop enlarges it at most this much, else from
# the finest decode it needs (1/2, or whole). Measured on the 17 fixture photos upscaled to 4000 px, warping from the
# same landmarks: crops from the 1/4 decode are cosine ≥ 0.9948 (mean 0.998) to whole-decode crops at a scale up to
# 0.5 and ≥ 0.9877 (mean 0.996) at 0.5-1.0; crops from a finer decode ≥ 0.9992. What moves small faces further is
# the detector's landmarks (docs/pipeline.md, lever 1)
REDUCED_ALIGN_MAX_SCALE = 1.0


def detect_faces(
    detector: Runner,
    models: FaceModels,
    prepared: Sequence[PreparedPhoto],
    batch: int,
    options: PipelineOptions,
    times: StageTimes,
) -> list[Detections]:
    """Faces of prepared photos, one detector call per ``batch`` of them."""
    found: list[Detections] = []
    head = models.detector.head
    assert head is not None
    for start in range(0, len(prepared), batch):
        chunk = prepared[start : start + batch]
        frames = np.stack([p.frame for p in chunk])
        began = time.perf_counter()
        named, runtime = detector_outputs(detector, frames, head, models.detector_size)
        faces = decode_detections(
            named,
            [p.scale for p in chunk],
            [p.photo_size for p in chunk],
            head,
            models.detector_size,
            options.det_thresh,
            options.nms_thresh,
            options.max_faces,
        )
        times.add("detect", runtime)
        times.add("postprocess", max(0.0, time.perf_counter() - began - runtime))
        found += faces
    return found


def align_faces(
    embedder: ModelSpec,
    template: np.ndarray,
    photos: Sequence[PreparedPhoto],
    faces: Sequence[Detections],
    times: StageTimes,
) -> np.ndarray:
    """Aligned crops [sum of faces, H, W, 3] of every face of every photo, in order: the transforms
    of all faces in one batched estimate; a reduced photo's face is warped from the reduced decode
    when its crop does not enlarge it (``REDUCED_ALIGN_MAX_SCALE``), else from a finer decode."""
    began = time.perf_counter()
    size = embedder.input_size
    counts = [len(found) for found in faces]
    crops = np.zeros((sum(counts), *size, 3), dtype=np.uint8)
    if not len(crops):
        return crops
    matrices = similarity_transforms(np.concatenate([f.landmarks for f in faces if len(f)]), template)
    at = 0
    for photo, count in zip(photos, counts, strict=True):
        if not count:
            continue
        own = matrices[at : at + count]
        if photo.factor > 1:
            crops[at : at + count] = _warp_from_decodes(photo, own, size)
        else:
            crops[at : at + count] = warp_faces(photo.image, own, size)
        at += count
    times.add("align", time.perf_counter() - began)
    return crops


def embed_crops(embedder: Runner, spec: ModelSpec, crops: np.ndarray, batch: int, times: StageTimes) -> np.ndarray:
    """Aligned crops → unit-length embeddings [n, D], ``batch`` crops per call."""
    began = time.perf_counter()
    (source,) = embedder.inputs
    rows = []
    for start in range(0, len(crops), batch):
        frames = blob_from_images(crops[start : start + batch], spec.normalize)
        output = next(iter(embedder.infer({source.name: frames}).values()))
        rows.append(output.reshape(len(frames), -1).astype(np.float32))
    embeddings = (
        l2_normalize(np.concatenate(rows)) if rows else np.zeros((0, spec.embedding_size or 0), dtype=np.float32)
    )
    times.add("embed", time.perf_counter() - began)
    return embeddings


def _warp_from_decodes(photo: PreparedPhoto, matrices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A reduced photo's faces (``matrices``: photo pixels → crop), each warped from the most reduced
    decode on which its crop does not enlarge it (``REDUCED_ALIGN_MAX_SCALE``): the reduced image the
    detector saw, else 1/2, else the photo whole. Chosen per face, so a face's crop does not depend on
    which other faces are aligned with it."""
    crops = np.zeros((len(matrices), *size, 3), dtype=np.uint8)
    scales = transform_scale(on_reduced_image(matrices, photo.factor))
    room = photo.factor * REDUCED_ALIGN_MAX_SCALE / scales  # the largest factor each face fits at
    factors = np.array([max([1] + [f for f in (2, 4, 8) if f <= r and f <= photo.factor]) for r in room])
    for factor in np.unique(factors):
        chosen = factors == factor
        source = photo.decoded_at(int(factor))
        crops[chosen] = warp_faces(source, on_reduced_image(matrices[chosen], int(factor)), size)
    return crops


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)
