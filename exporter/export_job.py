"""The shared second half of every export: populated torch model + spec → ONNX →
simplified, proven, stamped artifact (``.onnx`` + sidecar ``.json``), written atomically.

Both files are produced in a temp directory beside the target and renamed into place only
after every proof passed, so a failed run never replaces a good artifact.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from torch import nn

from facebatch.atomic import write_text_atomic
from facebatch.configs.spec import ModelSpec
from facebatch.environment import environment, file_sha256
from facebatch.errors import ExportError, SpecError
from facebatch.exporter.metadata import SEEDED_WARNING, ArtifactRecord, WeightsInfo
from facebatch.exporter.simplify import simplify_onnx
from facebatch.exporter.torch_to_onnx import DEFAULT_OPSET, onnx_from_torch
from facebatch.progress import step, warn
from facebatch.verify.parity import ParityReport
from facebatch.verify.torch_parity import intrinsic_fp32_error, torch_vs_onnx

PARITY_BATCH_SIZES = (1, 2, 7, 32)
CONDITIONING_FRAMES = 4
SEEDED_MARGIN = 4.0  # seeded weights: parity gate = max(spec atol, margin × the model's own fp32 error)


@dataclass
class ExportSettings:
    """What every export request has, whatever the model family."""

    out_dir: Path = Path("build/onnx")
    name: str | None = None
    opset: int = DEFAULT_OPSET
    parity_batch_sizes: Sequence[int] = PARITY_BATCH_SIZES
    photos: Sequence[Path] = ()  # real frames for the proofs; seeded noise fills the rest
    seed: int = 0


@dataclass
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    spec: ModelSpec
    weights: WeightsInfo
    parity: list[ParityReport] = field(default_factory=list)
    parity_atol: float | None = None  # None: the spec's per-output tolerances

    @property
    def max_parity_diff(self) -> float:
        return max(r.max_abs_diff for r in self.parity)


def check_parity_batch_sizes(sizes: Sequence[int]) -> None:
    if not sizes or min(sizes) < 1:
        raise SpecError("parity batch sizes must be positive integers")


def artifact_name(spec: ModelSpec, name: str | None) -> str:
    name = name or spec.default_filename
    return name if name.endswith(".onnx") else name + ".onnx"


def seeded_parity_gate(model: nn.Module, spec: ModelSpec, frames: np.ndarray, weights: WeightsInfo) -> float:
    """Seeded weights only: a random net loses more fp32 precision than a trained one, so the
    gate is max(spec atol, margin × the torch model's own fp32-vs-fp64 error), and says so."""
    with step("measure the seeded model's own fp32 error (fp32 vs fp64 torch)"):
        own_error = intrinsic_fp32_error(model, frames[:CONDITIONING_FRAMES])
    spec_atol = max(t.atol for t in spec.outputs)
    gate = max(spec_atol, SEEDED_MARGIN * own_error)
    weights.parity_note = (
        f"seeded weights: parity gate {gate:.3g} = max(spec atol {spec_atol:g}, "
        f"{SEEDED_MARGIN:g} x the torch model's own fp32-vs-fp64 error {own_error:.3g}); "
        "real weights are held to the spec atol"
    )
    warn(weights.parity_note)
    return gate


def export_artifact(
    model: nn.Module,
    spec: ModelSpec,
    weights: WeightsInfo,
    out_dir: Path,
    name: str | None,
    opset: int,
    frames: np.ndarray,
    parity_batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
) -> ExportResult:
    """Export ``model`` (eval mode, weights loaded), prove it on ``frames`` (distinct,
    preprocessed, at least max(parity_batch_sizes) of them), write both artifacts."""
    check_parity_batch_sizes(parity_batch_sizes)
    if weights.kind == "seeded":
        warn(f"no --weights given: {SEEDED_WARNING}")
    target = Path(out_dir) / artifact_name(spec, name)
    sidecar_target = target.with_suffix(".json")
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".facebatch-export-") as tmp:
        work = Path(tmp)
        with step(f"export {spec.name} to ONNX (opset {opset}, batch symbolic)"):
            raw = onnx_from_torch(model, spec, work / "raw.onnx", opset)
        with step("simplify with onnxsim and prove the batch axis stayed symbolic"):
            simple = simplify_onnx(raw, work / "simplified.onnx", spec)
        parity_atol = seeded_parity_gate(model, spec, frames, weights) if weights.kind == "seeded" else None
        with step(f"parity torch vs onnxruntime at batch {', '.join(map(str, parity_batch_sizes))}"):
            parity = torch_vs_onnx(model, simple, spec, frames, parity_batch_sizes, parity_atol)
        failed = [r for r in parity if not r.passed]
        if failed:
            raise ExportError("exported ONNX disagrees with the torch model: " + " | ".join(r.summary() for r in failed))
        record = ArtifactRecord(spec, weights, opset, parity)
        final = work / target.name
        onnx.save(record.stamp(onnx.load(str(simple))), str(final))
        sidecar = record.sidecar(target, file_sha256(final), environment())
        final.replace(target)  # same filesystem: one atomic rename
    # The sidecar names the ONNX file's hash, so it is written once the ONNX stands.
    write_text_atomic(sidecar_target, json.dumps(sidecar, indent=2) + "\n")
    return ExportResult(target, sidecar_target, spec, weights, parity, parity_atol)
