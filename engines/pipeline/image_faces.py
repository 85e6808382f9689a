"""What the face pipeline gives back: one ``ImageFaces`` per photo (its faces and their embeddings,
or why it could not be read) and ``StageTimes``, the busy time of each stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.engines.pipeline.scrfd_decode import Detections


@dataclass
class ImageFaces:
    """One photo's result: its faces in its own pixels (best score first) and their embeddings
    [n, D] (unit length), or the reason it could not be read."""

    path: Path
    image_size: tuple[int, int] | None = None  # height, width
    faces: Detections | None = None
    embeddings: np.ndarray | None = None
    error: str | None = None
    error_field: str | None = None  # the option the error is about (max_photo_pixels for a photo above it)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __len__(self) -> int:
        return 0 if self.faces is None else len(self.faces)

    def best_face(self) -> int | None:
        """The index of the face a comparison takes: the highest score (they are sorted)."""
        return 0 if len(self) else None


STAGES = ("read", "letterbox", "detect", "postprocess", "align", "embed")
STAGE_WORDS = {
    "read": "read and decode the photo (reader threads)",
    "letterbox": "letterbox and normalise (reader threads)",
    "detect": "detector runtime",
    "postprocess": "head layout, decode, NMS, back to photo pixels",
    "align": "similarity transforms and warps",
    "embed": "embedder runtime, normalise crops, L2",
}


@dataclass
class StageTimes:
    """Busy seconds per stage (reader stages run beside the others, so they may add up to more
    than the wall time), photos and faces seen, and the wall time of the whole run."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    images: int = 0
    faces: int = 0
    wall: float = 0.0

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds

    def absorb(self, other: StageTimes) -> None:
        """Add another lane's busy times, photos and faces (not its wall time: the lanes ran side by side)."""
        for stage, seconds in other.seconds.items():
            self.seconds[stage] += seconds
        self.images += other.images
        self.faces += other.faces

    def to_dict(self) -> dict:
        return {"seconds": dict(self.seconds), "images": self.images, "faces": self.faces, "wall": self.wall}
