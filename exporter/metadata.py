"""Artifact metadata: ONNX ``metadata_props`` (flat strings) and the sidecar JSON.

The engine/ONNX files stay standard; everything facebatch knows about them travels
beside them (a header inside a TensorRT plan breaks trtexec and Triton).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx

import facebatch
from facebatch.configs.spec import ModelSpec
from facebatch.configs.spec_io import spec_to_dict
from facebatch.verify.parity import ParityReport

SEEDED_WARNING = "seeded random weights: for verification and benchmarking only, detects or recognises nothing"
DETAIL_PROPS = (
    "input_size", "strides", "anchors_per_location", "use_kps", "output_layout", "letterbox",
    "network", "embedding_size", "alignment_template", "alignment",
)  # fmt: skip


def _prop_value(value: Any) -> str:
    """Flat lists as "a,b"; nested ones (the alignment template) as JSON."""
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple)) for v in value):
            return json.dumps(value)
        return ",".join(map(str, value))
    return str(value)


@dataclass
class WeightsInfo:
    kind: str  # "seeded" | "checkpoint" | "onnx"
    path: str | None = None
    sha256: str | None = None
    seed: int | None = None
    proof: ParityReport | None = None
    parity_note: str | None = None

    def describe(self) -> str:
        if self.kind == "seeded":
            return f"{SEEDED_WARNING} (seed {self.seed})"
        return f"{self.kind} {Path(self.path or '').name} sha256 {self.sha256}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "path": self.path, "sha256": self.sha256, "seed": self.seed}
        if self.kind == "seeded":
            data["warning"] = SEEDED_WARNING
        if self.proof is not None:
            data["import_proof"] = self.proof.to_dict()
        if self.parity_note:
            data["parity_note"] = self.parity_note
        return data


@dataclass
class ArtifactRecord:
    spec: ModelSpec
    weights: WeightsInfo
    opset: int
    parity: list[ParityReport] = field(default_factory=list)

    def metadata_props(self) -> dict[str, str]:
        spec = self.spec
        details = spec.details
        props = {
            "facebatch_version": facebatch.__version__,
            "model_family": spec.family,
            "variant": spec.name,
            "input_name": spec.input.name,
            "input_dims": json.dumps(list(spec.input.dims)),
            "batch_axis": "0 (symbolic 'batch') on every input and output",
            "mean": ",".join(f"{v:g}" for v in spec.normalize.mean),
            "std": ",".join(f"{v:g}" for v in spec.normalize.std),
            "color_order": "RGB" if spec.normalize.rgb else "BGR",
            "weights_source": self.weights.kind,
            "weights_sha256": self.weights.sha256 or "",
            "spec": json.dumps(spec_to_dict(spec), sort_keys=True),
        }
        for key in DETAIL_PROPS:
            if key in details:
                props[key] = _prop_value(details[key])
        if self.weights.kind == "seeded":
            props["warning"] = SEEDED_WARNING
            props["weights_seed"] = str(self.weights.seed)  # lets verify --reference torch rebuild the model
        return props

    def stamp(self, model: onnx.ModelProto) -> onnx.ModelProto:
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, self.metadata_props())
        model.producer_name = "facebatch"
        model.producer_version = facebatch.__version__
        return model

    def sidecar(self, onnx_path: Path, onnx_sha256: str, environment: dict[str, Any]) -> dict[str, Any]:
        return {
            "artifact": onnx_path.name,
            "sha256": onnx_sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "opset": self.opset,
            "spec": spec_to_dict(self.spec),
            "weights": self.weights.to_dict(),
            "parity_torch_vs_onnxruntime": [r.to_dict() for r in self.parity],
            "environment": environment,
        }
