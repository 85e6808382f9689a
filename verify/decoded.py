"""Check 3: are a frame's decoded faces (boxes, scores, landmarks after decode and NMS) the
same whether it ran alone or inside a batch?

Outputs are read the way a batched consumer reads them: ``[N, rows, C]`` is sliced per
frame, and a 2-D ``[N·rows, C]`` output is split into N equal blocks, which is what anyone
does with a naively batched official file, and why its frames come out mixed.
Coordinates may differ by at most ``atol × the largest stride`` (a raw diff of atol in
stride units), scores by ``atol``; the counts must be equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from facebatch.configs.scrfd import OUTPUT_CHANNELS
from facebatch.configs.spec import HeadLayout
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.face_detect import per_frame
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, Detections, decode_frame
from facebatch.engines.pipeline.scrfd_layout import canonical_outputs

CHANNELS = set(OUTPUT_CHANNELS.values())


@dataclass
class FrameMismatch:
    batch: int
    frame: int
    alone: int  # detections when the frame ran alone
    batched: int  # … and inside the batch
    reason: str

    def describe(self) -> str:
        return f"batch {self.batch}, frame {self.frame}: {self.reason}"


@dataclass
class BatchDecoded:
    """One batch size: how many detections were compared and the largest differences."""

    batch: int
    detections: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    max_landmark_diff: float = 0.0
    mismatches: list[FrameMismatch] = field(default_factory=list)

    def describe(self) -> str:
        diffs = f"box {self.max_box_diff:.3g} px, score {self.max_score_diff:.3g}, landmarks {self.max_landmark_diff:.3g} px"
        if not self.mismatches:
            return f"batch {self.batch}: {self.detections} detections identical ({diffs})"
        return f"batch {self.batch}: {len(self.mismatches)} frame(s) differ; first: {self.mismatches[0].reason}"


def consumer_view(
    raw: Mapping[str, np.ndarray], layout: HeadLayout, height: int, width: int, batch: int
) -> dict[str, np.ndarray]:
    """Raw outputs → ``{"score_8": [N, rows, C], …}`` as a batched consumer reads them."""
    blocks = []
    for name, array in raw.items():
        if array.ndim == 3 and array.shape[0] == batch:
            blocks.append(array)
        elif array.ndim == 2 and array.shape[-1] in CHANNELS and array.shape[0] % batch == 0:
            blocks.append(array.reshape(batch, -1, array.shape[-1]))  # the naive split
        else:
            raise SpecError(f"output {name} of shape {list(array.shape)} cannot be split into {batch} frames")
    return canonical_outputs(blocks, layout, height, width, batch)


def _diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


class DecodedIndependence:
    """Fed every batch that check 1 runs (``verify_batch_independence(on_batch=…)``)."""

    def __init__(
        self,
        layout: HeadLayout,
        input_size: tuple[int, int],
        atol: float,
        det_thresh: float = DET_THRESH,
        nms_thresh: float = NMS_THRESH,
    ) -> None:
        self.layout = layout
        self.height, self.width = input_size
        self.det_thresh = det_thresh
        self.nms_thresh = nms_thresh
        self.score_atol = atol
        self.coord_atol = atol * max(layout.strides)
        self.batches: list[BatchDecoded] = []
        self.error: str | None = None
        self._alone: dict[int, Detections] = {}

    def _decode(self, outputs: Mapping[str, np.ndarray]) -> Detections:
        return decode_frame(outputs, self.layout, self.height, self.width, self.det_thresh, self.nms_thresh)

    def __call__(
        self, batch: int, alone: Sequence[Mapping[str, np.ndarray]], batched: Mapping[str, np.ndarray]
    ) -> None:
        if self.error is not None:
            return
        try:
            together = consumer_view(batched, self.layout, self.height, self.width, batch)
            for i in range(batch):
                if i not in self._alone:
                    self._alone[i] = self._decode(
                        per_frame(consumer_view(alone[i], self.layout, self.height, self.width, 1), 0)
                    )
        except SpecError as exc:
            self.error = f"batch {batch}: {exc}"
            return
        result = BatchDecoded(batch)
        for i in range(batch):
            self._compare(result, i, self._alone[i], self._decode(per_frame(together, i)))
        self.batches.append(result)

    def _compare(self, result: BatchDecoded, frame: int, alone: Detections, batched: Detections) -> None:
        if len(alone) != len(batched):
            reason = f"{len(alone)} detection(s) alone, {len(batched)} inside the batch"
            result.mismatches.append(FrameMismatch(result.batch, frame, len(alone), len(batched), reason))
            return
        result.detections += len(alone)
        box, score = _diff(alone.boxes, batched.boxes), _diff(alone.scores, batched.scores)
        landmark = _diff(alone.landmarks, batched.landmarks)
        result.max_box_diff = max(result.max_box_diff, box)
        result.max_score_diff = max(result.max_score_diff, score)
        result.max_landmark_diff = max(result.max_landmark_diff, landmark)
        if box > self.coord_atol or landmark > self.coord_atol or score > self.score_atol:
            reason = (
                f"same {len(alone)} detection(s) but box {box:.3g} px, landmarks {landmark:.3g} px "
                f"(limit {self.coord_atol:.3g}), score {score:.3g} (limit {self.score_atol:g})"
            )
            result.mismatches.append(FrameMismatch(result.batch, frame, len(alone), len(batched), reason))

    @property
    def detections_alone(self) -> int:
        return sum(len(d) for d in self._alone.values())

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.batches) and not any(b.mismatches for b in self.batches)

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "error": self.error,
            "det_thresh": self.det_thresh,
            "nms_thresh": self.nms_thresh,
            "coordinate_atol_px": self.coord_atol,
            "score_atol": self.score_atol,
            "detections_alone": self.detections_alone,
            "detections_per_frame_alone": [len(self._alone[i]) for i in sorted(self._alone)],
            "batches": [asdict(b) for b in self.batches],
        }
