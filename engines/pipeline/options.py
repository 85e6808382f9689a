"""What a face pipeline runs and how: its models (``FaceModels``, proven to fit together before any
work) and its options (``PipelineOptions``: thresholds, batches, readers, lanes, the photo limit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facebatch.configs.arcface import ALIGNMENT_TEMPLATE_112
from facebatch.configs.spec import ModelSpec
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.align import template_for
from facebatch.engines.pipeline.defaults import (
    DEFAULT_DETECT_BATCH,
    DEFAULT_EMBED_BATCH,
    DEFAULT_MAX_FACES,
    DEFAULT_READ_WORKERS,
)
from facebatch.engines.pipeline.image_header import DEFAULT_MAX_PHOTO_PIXELS, check_limit_against_opencv
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, check_thresholds


@dataclass(frozen=True)
class FaceModels:
    """The specs the pipeline runs: a detector (SCRFD; landmarks needed to align) and,
    optionally, an embedder, with the detector's input size."""

    detector: ModelSpec
    detector_size: tuple[int, int]
    embedder: ModelSpec | None = None

    def __post_init__(self) -> None:
        if self.detector.head is None:
            raise SpecError(
                f"detector {self.detector.name} is not a face detector; pass an SCRFD model", field="detector"
            )
        if self.embedder is not None:
            if not self.embedder.family.is_embedder:
                raise SpecError(
                    f"embedder {self.embedder.name} is not an embedder; pass an ArcFace model or a described embedder",
                    field="embedder",
                )
            if not self.detector.head.use_kps:
                raise SpecError(
                    f"detector {self.detector.name} finds no landmarks, and faces are aligned on 5 landmarks before "
                    "they are embedded; pass a detector with landmarks (the *_kps / *_bnkps variants)",
                    field="detector",
                )
            try:  # refuse an embedder whose crops cannot be aligned, before any work
                self.alignment_template()
            except SpecError as exc:
                raise SpecError(f"embedder {self.embedder.name}: {exc}", field="embedder") from None

    def alignment_template(self) -> np.ndarray:
        assert self.embedder is not None
        return template_for(self.embedder.alignment_template or ALIGNMENT_TEMPLATE_112, self.embedder.input_size)


@dataclass(frozen=True)
class PipelineOptions:
    det_thresh: float = DET_THRESH
    nms_thresh: float = NMS_THRESH
    max_faces: int = DEFAULT_MAX_FACES  # per photo; 0 keeps all (insightface's max_num)
    batch_size: int | None = DEFAULT_DETECT_BATCH  # photos per detector call (None: the detector's profile max)
    embed_batch_size: int | None = DEFAULT_EMBED_BATCH  # faces per embedder call (None: the embedder's profile max)
    read_workers: int = DEFAULT_READ_WORKERS  # 0: read in the calling thread, nothing overlaps
    # decode large JPEGs at 1/2, 1/4, 1/8 of their size for the detector (a 12 MP JPEG: 13.4 ms at 1/4, 37 whole), but
    # not the same faces as a full decode (boxes up to 2.1 and landmarks 1.6 detector px apart, so cosine ≥ 0.985
    # for faces of 40 detector px and more, down to 0.45 under 20 px; lever 1 of docs/pipeline.md): asked for,
    # never the default
    reduced_decode: bool = False
    # pipelines side by side, each with its own runtimes, reading and running its own photos (None: the lane
    # plan's default, one per physical core on ort-cpu; openvino runs them when asked); with more than one,
    # read_workers is not used
    lanes: int | None = None
    # a photo whose header says more pixels, gives no size or is not a JPEG, PNG, BMP, GIF, WebP or TIFF is skipped
    # with its reason, never decoded (image_header)
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS
    # openvino: keep compiled models between runs and import them (0.05-0.09 s a model here against 0.20-0.34 s
    # compiling; engines/runners/compile_cache.py)
    compile_cache: bool = True

    def __post_init__(self) -> None:
        check_limit_against_opencv(self.max_photo_pixels)
        check_thresholds(self.det_thresh, self.nms_thresh)
        if self.lanes is not None and self.lanes < 1:
            raise SpecError(f"lanes must be at least 1, got {self.lanes}", field="lanes")
        for name in ("batch_size", "embed_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SpecError(f"{name} must be at least 1, got {value}", field=name)
        if self.read_workers < 0:  # the command line's --workers sets read_workers
            raise SpecError(f"workers cannot be negative (read_workers={self.read_workers})", field="workers")
        if self.max_faces < 0:
            raise SpecError(f"max_faces cannot be negative, got {self.max_faces}", field="max_faces")


PipelineSettings = PipelineOptions  # alias for one release
