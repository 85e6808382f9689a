"""How ``facebatch triton`` serves each model: the runtime, the instances and where they run, the
dynamic batcher's queue, the face pipeline's photo limits; each checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.image_header import DEFAULT_MAX_PHOTO_PIXELS, batch_pixel_budget
from facebatch.engines.triton.defaults import (
    DEFAULT_INSTANCES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_QUEUE_DELAY_US,
    DEFAULT_QUEUE_TIMEOUT_MS,
    DEVICES,
    RUNTIMES,
)
from facebatch.engines.triton.model_config import DynamicBatching


@dataclass(frozen=True)
class RepositoryOptions:
    """How each model of a repository is served."""

    runtime: str = RUNTIMES[0]  # onnxruntime | tensorrt | python
    pipeline: bool = False
    instances: int = DEFAULT_INSTANCES
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE  # 0: unbounded
    queue_timeout_ms: int = DEFAULT_QUEUE_TIMEOUT_MS  # 0: none
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS  # face_pipeline refuses a larger photo before decoding it
    max_batch_pixels: int | None = None  # decoded pixels of a merged batch at once; None: batch_pixel_budget's
    max_batch: int | None = None  # None: each artifact's profile max
    device: str | None = None  # cpu | gpu; None: gpu for onnxruntime and tensorrt, cpu for python
    force: bool = False
    gallery: Path | None = None  # with pipeline: face_search over this gallery (referenced by its absolute path)

    @property
    def batch_pixels(self) -> int:
        """What face_pipeline decodes of a merged batch at once (its stub's memory bound)."""
        return batch_pixel_budget(self.max_photo_pixels, self.max_batch_pixels)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise SpecError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}", field="runtime")
        self._check_counts()
        self._check_device()
        if self.gallery is not None and not self.pipeline:
            raise SpecError(
                "gallery is searched with the faces that face_pipeline finds: add the face pipeline to the "
                "repository too, or leave the gallery out",
                field="gallery",
            )

    def _check_counts(self) -> None:
        at_least_one = {"instances": self.instances, "max_photo_pixels": self.max_photo_pixels}
        at_least_one |= {"max_batch": self.max_batch} if self.max_batch is not None else {}
        for name, value in at_least_one.items():
            if value < 1:
                raise SpecError(f"{name} must be at least 1, got {value}", field=name)
        not_negative = {
            "max_queue_delay_us": self.max_queue_delay_us,
            "max_queue_size": self.max_queue_size,  # 0: no bound
            "queue_timeout_ms": self.queue_timeout_ms,  # 0: no timeout
        }
        for name, value in not_negative.items():
            if value < 0:
                raise SpecError(f"{name} cannot be negative, got {value} (0: no bound)", field=name)
        if self.max_batch_pixels is not None and self.max_batch_pixels < self.max_photo_pixels:
            raise SpecError(
                f"max_batch_pixels {self.max_batch_pixels} is below the photo limit ({self.max_photo_pixels} pixels): "
                "one photo must fit in a batch's budget",
                field="max_batch_pixels",
            )

    def _check_device(self) -> None:
        if self.device not in (None, *DEVICES):
            raise SpecError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}", field="device")
        if self.runtime == "tensorrt" and self.device == "cpu":
            raise SpecError(
                "TensorRT engines run on a GPU only: device cpu does not go with the tensorrt runtime (pick "
                "onnxruntime or python for CPU instances)",
                field="device",
            )
        if self.runtime == "python" and self.device == "gpu":
            raise SpecError(
                "the python runtime runs onnxruntime on the CPU inside the python backend: drop device gpu, or pick "
                "onnxruntime or tensorrt for GPU instances",
                field="device",
            )

    def batching(self, preferred: tuple[int, ...]) -> DynamicBatching:
        return DynamicBatching(preferred, self.max_queue_delay_us, self.max_queue_size, self.queue_timeout_ms * 1000)

    @property
    def instance_kind(self) -> str:
        return self.device or ("cpu" if self.runtime == "python" else "gpu")
