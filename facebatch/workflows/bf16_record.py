"""The BF16 proof's record, ``MODEL.bf16.json`` beside the model, and what it takes to run a model in BF16.

The proof (``facebatch.workflows.bf16_proof``) runs the model on OpenVINO in FP32 and in BF16 on the same photos
and writes its verdict here: the figures, the failures, the model's sha256, the CPU (name, bf16 class, OpenVINO's
capabilities) and OpenVINO's version. A model runs in BF16 only where this record is facebatch's own (its digest
holds), names this very file (sha256) at the input size it runs at (detectors), passed, has figures that meet the limits of ``configs.precision`` (judged
again here, not taken from the record) and was measured on a CPU of this bf16 class. Light: no runtime is imported.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from facebatch.configs.model_file import ModelFile
from facebatch.configs.precision import BF16_DECODED_LANDMARK_ATOL_PX, BF16_DECODED_MIN_IOU, BF16_MIN_COSINE
from facebatch.core.atomic import write_text_atomic
from facebatch.core.errors import OutputError
from facebatch.engines.runners.openvino_runner import OpenVinoCpu

RECORD_SUFFIX = ".bf16.json"
WRITER = "facebatch BF16 proof"  # the record's ``written_by``: what facebatch recognises as its own
LIMITS = {
    "min IoU of matched faces": BF16_DECODED_MIN_IOU,
    "max landmark error px": BF16_DECODED_LANDMARK_ATOL_PX,
    "min cosine": BF16_MIN_COSINE,
}


def bf16_record_path(model: Path) -> Path:
    """``det_2.5g.onnx`` → ``det_2.5g.bf16.json`` beside it."""
    return Path(model).with_name(f"{Path(model).stem}{RECORD_SUFFIX}")


def record_digest(record: dict[str, Any]) -> str:
    """The sha256 of everything in the record but the digest itself: a hand-edited record no longer matches."""
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def bf16_failures(embedder: bool, figures: dict[str, Any]) -> list[str]:
    """The limits ``figures`` (``DetectorAccuracy``/``EmbedderAccuracy.to_dict()``) do not meet, in words."""
    return _embedder_failures(figures) if embedder else _detector_failures(figures)


def _detector_failures(figures: dict[str, Any]) -> list[str]:
    failures = []
    if not figures.get("reference_faces"):
        failures.append("the FP32 model finds no face in the photos, so nothing was judged (pass photos with faces)")
    if figures.get("missed"):
        failures.append(
            f"the BF16 model misses {len(figures['missed'])} of FP32's faces: {'; '.join(figures['missed'])}"
        )
    if figures.get("extra"):
        failures.append(
            f"the BF16 model finds {len(figures['extra'])} faces FP32 does not: {'; '.join(figures['extra'])}"
        )
    if figures.get("recall_candidate", 0) < figures.get("recall_reference", 0):
        failures.append(
            f"hand-labelled faces lost: FP32 finds {figures['recall_reference']} of {figures.get('labelled')}, "
            f"BF16 {figures['recall_candidate']}"
        )
    iou = (figures.get("iou") or {}).get("min")
    if iou is not None and iou < BF16_DECODED_MIN_IOU:
        failures.append(f"a matched face's IoU to FP32's is {iou:.3f}, below {BF16_DECODED_MIN_IOU}")
    landmarks = (figures.get("landmark_error_px") or {}).get("max")
    if landmarks is not None and landmarks > BF16_DECODED_LANDMARK_ATOL_PX:
        failures.append(f"a landmark moved {landmarks:.2f} px from FP32's, more than {BF16_DECODED_LANDMARK_ATOL_PX}")
    return failures


def _embedder_failures(figures: dict[str, Any]) -> list[str]:
    if not figures.get("faces"):
        return ["no aligned face to embed in the photos, so nothing was judged (pass photos with faces)"]
    failures = []
    cosine = (figures.get("cosine") or {}).get("min")
    if cosine is None or cosine < BF16_MIN_COSINE:
        shown = "missing" if cosine is None else f"{cosine:.4f}"
        failures.append(f"a face's cosine to its FP32 embedding is {shown}, below {BF16_MIN_COSINE}")
    if figures.get("ordering_reference") and not figures.get("ordering_candidate"):
        failures.append("a different-person pair now scores above a same-person pair (FP32 kept them apart)")
    return failures


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path`` (a dict), or None where there is none or it is not JSON."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def check_ours(path: Path) -> None:
    """Refuse a record path that holds a file facebatch did not write (before any work: it is never replaced)."""
    if path.exists() or path.is_symlink():
        existing = read_record(path)
        if existing is None or existing.get("written_by") != WRITER:
            raise OutputError(
                f"{path} exists and is not a BF16 proof record facebatch wrote; move it away, facebatch will not "
                "overwrite it",
                field="model",
            )


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write the record atomically, replacing only a record facebatch wrote (never a file of someone else's)."""
    check_ours(path)
    record = dict(record, written_by=WRITER)
    record["digest"] = record_digest(record)
    write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n", field="model")


def bf16_refusal(model: ModelFile, cpu: OpenVinoCpu) -> str | None:
    """Why ``model`` must not run in BF16 on ``cpu``, in one line; None where a passing proof of this file
    for this CPU class is recorded beside it."""
    problem = cpu.bf16_problem()
    if problem is not None:
        return problem
    name = model.path.name
    if model.precision != "fp32":
        return f"{name} is {model.precision}; BF16 runs an FP32 file's weights (pass the FP32 file)"
    path = bf16_record_path(model.path)
    record = read_record(path)
    if record is None:
        return f"{name} has no BF16 proof beside it ({path.name})"
    if record.get("written_by") != WRITER or record.get("digest") != record_digest(record):
        return f"{path.name} is not a BF16 proof as facebatch wrote it (changed since, or someone else's)"
    if record.get("sha256") != model.sha256:
        return f"{path.name} proves another file (sha256 {str(record.get('sha256'))[:12]}…), not this {name}"
    size = list(model.spec.input_size)
    if not model.spec.family.is_embedder and record.get("size") != size:
        proven = "x".join(map(str, record.get("size") or [])) or "no recorded size"
        return f"{name} was proven in BF16 at {proven}, not at {size[0]}x{size[1]} (a detector's error grows with it)"
    failures = record.get("failures") or []
    if not record.get("passed") or failures:
        return f"{name} failed its BF16 proof ({'; '.join(failures) or 'no passing verdict recorded'})"
    failures = bf16_failures(bool(record.get("embedder")), record.get("figures") or {})
    if failures:
        return f"{path.name}'s figures do not meet the BF16 limits ({'; '.join(failures)})"
    proven_on = (record.get("cpu") or {}).get("bf16_class")
    if proven_on != cpu.bf16_class:
        return f"{name} was proven in BF16 on a {proven_on} CPU; this one is {cpu.bf16_class}"
    return None
