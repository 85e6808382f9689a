"""quantize's accuracy gate: an INT8 model against its FP32 source on the same photos (verify/accuracy.py).

Detectors: recall on hand-labelled faces may drop by at most ``max_drop`` (default 0: it must not drop),
or, without labels, the share of FP32's faces the INT8 model misses. Embedders: every face's cosine to
its FP32 embedding ≥ 1 − ``max_drop`` (default 0.99), and the same-person pairs still above every
different-person pair when they were. ``Evidence`` is what FP32 found on the photos, computed once and
judged against by every candidate (and by ``recheck_int8`` on another CPU class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile, default_artifact, read_model_file
from facebatch.configs.precision import INT8_MIN_COSINE
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineSettings
from facebatch.engines.pipeline.preprocess import blob_from_images, load_image
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.verify.accuracy import DetectorAccuracy, EmbedderAccuracy, detector_accuracy, embedder_accuracy

DETECTOR_MAX_DROP = 0.0  # labelled recall may not drop
UNLABELLED_MAX_MISSED = 0.05  # without labels: the share of FP32's faces the INT8 model may miss
EMBEDDER_MAX_DROP = 1.0 - INT8_MIN_COSINE

Accuracy = DetectorAccuracy | EmbedderAccuracy


@dataclass
class Judgement:
    """One model's accuracy against FP32, the gates it failed (in words) and the limits it was held to."""

    accuracy: Accuracy
    failures: list[str]
    limits: dict[str, float]

    @property
    def passed(self) -> bool:
        return not self.failures


# -- calibration and evaluation data ---------------------------------------------------------------
@dataclass
class AlignedFaces:
    """Embedders: the aligned faces of the photos, and which row is each photo's best face."""

    crops: np.ndarray  # [n, H, W, 3] BGR
    best: dict[str, int]  # photo name → row of its best face


def aligned_faces(embedder: ModelFile, detector_path: Path | None, photos: Sequence[Path]) -> AlignedFaces:
    detector = read_model_file(detector_path or default_artifact("detector"))
    crops, best = [], {}
    with open_pipeline(detector, embedder, settings=PipelineSettings(read_workers=0, lanes=1)) as pipeline:
        for photo in photos:
            prepared = pipeline.prepare(photo, load_image(photo))
            (result,) = pipeline.finish([prepared])
            if len(result):
                best[photo.name] = sum(len(c) for c in crops)
                crops.append(pipeline.align([prepared], [result.faces]))
    if not crops:
        raise SpecError(
            f"{detector.path.name} finds no face in the photos; an embedder is calibrated on faces", field="photos"
        )
    return AlignedFaces(np.concatenate(crops), best)


def detect(model: ModelFile, photos: Sequence[Path]) -> list[ImageFaces]:
    with open_pipeline(model, None, settings=PipelineSettings(read_workers=0, lanes=1)) as pipeline:
        return list(pipeline.run(list(photos)))


def embed(model: ModelFile, frames: np.ndarray) -> np.ndarray:
    spec = model.spec
    with make_onnx_runner("ort-cpu", model, spec.input_size, RunnerOptions()) as runner:
        rows = [
            next(iter(runner.infer({spec.input.name: frames[i : i + 8]}).values())) for i in range(0, len(frames), 8)
        ]
    return np.concatenate(rows).reshape(len(frames), -1)


@dataclass
class Evidence:
    """What the FP32 model found on the photos, which every INT8 candidate is judged against: the faces it
    detects (detectors), or the embeddings of the aligned faces (embedders: ``faces``, preprocessed ``frames``)."""

    photos: list[Path]
    reference: np.ndarray | list[ImageFaces]
    faces: AlignedFaces | None = None
    frames: np.ndarray | None = None

    def judge(self, candidate: ModelFile, max_drop: float | None) -> Judgement:
        """The accuracy gate: ``candidate`` against FP32 on the same photos."""
        if self.faces is not None and self.frames is not None:
            assert isinstance(self.reference, np.ndarray)
            quantized = embed(candidate, self.frames)
            pairs = {name: (self.reference[row], quantized[row]) for name, row in self.faces.best.items()}
            return embedder_gate(embedder_accuracy(self.reference, quantized, pairs), max_drop)
        assert isinstance(self.reference, list)
        return detector_gate(detector_accuracy(self.reference, detect(candidate, self.photos), self.photos), max_drop)


def fp32_evidence(source: ModelFile, photos: Sequence[Path], detector: Path | None = None) -> Evidence:
    """FP32's results on ``photos``; embedders need the ``detector`` that finds the faces."""
    photos = list(photos)
    if source.spec.family.is_embedder:
        faces = aligned_faces(source, detector, photos)
        frames = blob_from_images(faces.crops, source.spec.normalize)
        return Evidence(photos, embed(source, frames), faces, frames)
    return Evidence(photos, detect(source, photos))


# -- the gate --------------------------------------------------------------------------------------
def detector_gate(accuracy: DetectorAccuracy, max_drop: float | None) -> Judgement:
    if accuracy.labelled:
        limit = DETECTOR_MAX_DROP if max_drop is None else max_drop
        drop = (accuracy.recall_reference - accuracy.recall_candidate) / accuracy.labelled
        failures = (
            []
            if drop <= limit + 1e-12
            else [
                f"recall on hand-labelled faces fell from {accuracy.recall_reference} to {accuracy.recall_candidate} of "
                f"{accuracy.labelled} ({drop:.1%}, more than the {limit:g} allowed)"
            ]
        )
        return Judgement(accuracy, failures, {"labelled recall drop": limit})
    limit = UNLABELLED_MAX_MISSED if max_drop is None else max_drop
    missed = len(accuracy.missed) / max(1, accuracy.reference_faces)
    failures = (
        []
        if missed <= limit
        else [
            f"the INT8 model misses {len(accuracy.missed)} of the FP32 model's {accuracy.reference_faces} "
            f"faces ({missed:.1%}, more than the {limit:g} allowed)"
        ]
    )
    return Judgement(accuracy, failures, {"share of FP32 faces missed": limit})


def embedder_gate(accuracy: EmbedderAccuracy, max_drop: float | None) -> Judgement:
    limit = EMBEDDER_MAX_DROP if max_drop is None else max_drop
    failures = []
    if accuracy.min_cosine < 1.0 - limit:
        worst = sum(c < 1.0 - limit for c in accuracy.cosines)
        failures.append(
            f"{worst} of {accuracy.faces} faces have a cosine to their FP32 embedding below {1.0 - limit:.4f} "
            f"(min {accuracy.min_cosine:.4f})"
        )
    if accuracy.ordering_reference and not accuracy.ordering_candidate:
        failures.append("a different-person pair now scores above a same-person pair (FP32 kept them apart)")
    return Judgement(accuracy, failures, {"min cosine": 1.0 - limit})


def recheck_int8(path: Path, photos: Sequence[Path], detector: Path | None = None) -> tuple[Accuracy, list[str]]:
    """The accuracy gate of an INT8 file again, here, against the FP32 source it records (found beside
    it, sha256-checked): integer kernels differ between CPU classes, so a file gated on one is
    re-judged on another. Embedders need ``detector`` for the faces."""
    candidate = read_model_file(path)
    source = read_model_file(candidate.source_file())
    accepted = next((t.min_cosine for t in candidate.spec.outputs if t.min_cosine is not None), None)
    max_drop = None if accepted is None or not source.spec.family.is_embedder else 1.0 - accepted
    judged = fp32_evidence(source, photos, detector).judge(candidate, max_drop)
    return judged.accuracy, judged.failures
