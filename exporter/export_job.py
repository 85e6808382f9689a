"""The shared second half of every export: populated torch model + spec → ONNX →
simplified, proven, stamped artifact (``.onnx`` + sidecar ``.json``), published by
``facebatch.core.publish`` only after every proof passed (what a crash leaves is documented there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from facebatch.configs.spec import ModelSpec
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.errors import ExportError
from facebatch.core.progress import step, warn
from facebatch.core.publish import draft, publish
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.torch_runner import TorchRunner
from facebatch.exporter.artifact_names import default_artifact_name
from facebatch.exporter.defaults import PARITY_BATCH_SIZES, check_parity_batch_sizes
from facebatch.exporter.metadata import SEEDED_WARNING, ArtifactRecord, WeightsInfo
from facebatch.exporter.simplify import simplify_onnx
from facebatch.exporter.torch_to_onnx import onnx_from_torch
from facebatch.exporter.weights.seeded import ParityGate, seeded_parity_gate
from facebatch.verify.parity import ParityReport, runner_parity


@dataclass
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    spec: ModelSpec
    weights: WeightsInfo
    parity: list[ParityReport] = field(default_factory=list)
    parity_gate: ParityGate | None = None  # seeded weights; None: the spec's per-output tolerances

    @property
    def parity_atol(self) -> float | None:
        return None if self.parity_gate is None else self.parity_gate.atol

    @property
    def max_parity_diff(self) -> float:
        return max(r.max_abs_diff for r in self.parity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.onnx_path),
            "sidecar": str(self.sidecar_path),
            "spec": spec_to_dict(self.spec),
            "weights": self.weights.to_dict(),
            "parity": [r.to_dict() for r in self.parity],
            "parity_atol": self.parity_atol,
            "parity_gate": None if self.parity_gate is None else self.parity_gate.note,
            "max_parity_diff": self.max_parity_diff if self.parity else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        spec = self.spec
        lines = [
            f"# facebatch export: `{self.onnx_path.name}`",
            "",
            f"- artifact: `{self.onnx_path}` (sidecar `{self.sidecar_path.name}`)",
            f"- input: `{spec.input.name} {list(spec.input.dims)}`",
            f"- outputs: {', '.join(f'`{t.name} {list(t.dims)}`' for t in spec.outputs)}",
            f"- weights: {self.weights.describe()}",
        ]
        if self.weights.proof is not None:
            lines.append(f"- import proof: {self.weights.proof.summary()}")
        if self.parity_gate is not None:
            lines.append(f"- parity gate: {self.parity_gate.note}")
        lines += ["", "| parity torch vs onnxruntime | result |", "|---|---|"]
        lines += [f"| {r.label} | {r.summary().split(': ', 1)[-1]} |" for r in self.parity]
        return "\n".join(lines) + "\n"


def artifact_name(spec: ModelSpec, name: str | None, weights: WeightsInfo | None = None) -> str:
    """``name`` (``.onnx`` added), or the default name for ``spec`` and its ``weights`` (``artifact_names``)."""
    name = name or default_artifact_name(spec, weights)
    return name if name.endswith(".onnx") else name + ".onnx"


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
        warn(f"no weights given: {SEEDED_WARNING}")
    target = Path(out_dir) / artifact_name(spec, name, weights)
    sidecar_target = target.with_suffix(".json")
    if target.exists():
        warn(f"{target} exists; it is replaced if this export passes its proofs (and kept if not)")
    with draft(target, "out") as candidate:
        work = candidate.folder
        with step(f"export {spec.name} to ONNX (opset {opset}, batch symbolic)"):
            raw = onnx_from_torch(model, spec, work / "raw.onnx", opset)
        with step("simplify with onnxsim and prove the batch axis stayed symbolic"):
            simple = simplify_onnx(raw, work / "simplified.onnx", spec)
        gate = seeded_parity_gate(model, spec, frames) if weights.kind == "seeded" else None
        atol = None if gate is None else gate.atol
        with step(f"parity torch vs onnxruntime at batch {', '.join(map(str, parity_batch_sizes))}"):
            with OnnxRuntimeRunner(simple) as exported, TorchRunner.from_spec(model, spec) as reference:
                parity = runner_parity(exported, reference, spec, frames, parity_batch_sizes, atol)
        failed = [r for r in parity if not r.passed]
        if failed:
            raise ExportError(
                "exported ONNX disagrees with the torch model: " + " | ".join(r.summary() for r in failed)
            )
        record = ArtifactRecord(spec, weights, opset, parity, gate)
        onnx.save(record.stamp(onnx.load(str(simple))), str(candidate.path))
        publish(candidate, "facebatch export", record.sidecar_body(), source=record.source(), proof=record.proof())
    return ExportResult(target, sidecar_target, spec, weights, parity, gate)
