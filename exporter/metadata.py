"""Artifact metadata: ONNX ``metadata_props`` (flat strings) and the sidecar JSON.

The engine/ONNX files stay standard; everything facebatch knows about them travels
beside them (a header inside a TensorRT plan breaks trtexec and Triton).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from facebatch.configs.arcface import arcface_network
from facebatch.configs.license import License, license_of_weights
from facebatch.configs.spec import Family, ModelSpec
from facebatch.configs.spec_io import SPEC_PROP, spec_to_dict
from facebatch.core.version import __version__
from facebatch.exporter.weights.seeded import ParityGate
from facebatch.verify.parity import ParityReport

SEEDED_WARNING = "seeded random weights: for verification and benchmarking only, detects or recognises nothing"


def _joined(values: Any) -> str:
    return ",".join(map(str, values))


def readable_props(spec: ModelSpec) -> dict[str, str]:
    """The spec's facts as flat strings for people and tools that read metadata_props (the
    full spec is there too, as JSON, for facebatch itself)."""
    props = {"input_size": _joined(spec.input_size), **spec.descriptions}
    if spec.head is not None:
        props |= {
            "strides": _joined(spec.head.strides),
            "anchors_per_location": str(spec.head.anchors_per_location),
            "use_kps": str(spec.head.use_kps),
        }
    if spec.family is Family.ARCFACE:
        props["network"] = arcface_network(spec.name)
    if spec.embedding_size is not None:
        props["embedding_size"] = str(spec.embedding_size)
    if spec.alignment_template is not None:
        props["alignment_template"] = json.dumps([list(p) for p in spec.alignment_template])
    return props


@dataclass
class WeightsInfo:
    kind: str  # "seeded" | "checkpoint" | "onnx"
    path: str | None = None
    sha256: str | None = None
    seed: int | None = None
    proof: ParityReport | None = None

    @property
    def license(self) -> License:
        """Whose weights these are, and on what terms (configs/license.py)."""
        return license_of_weights(self.kind, self.path, self.sha256)

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
        return data


@dataclass
class ArtifactRecord:
    spec: ModelSpec
    weights: WeightsInfo
    opset: int
    parity: list[ParityReport] = field(default_factory=list)
    parity_gate: ParityGate | None = None

    def metadata_props(self) -> dict[str, str]:
        spec = self.spec
        props = {
            "facebatch_version": __version__,
            "model_family": spec.family.value,
            "variant": spec.name,
            "input_name": spec.input.name,
            "input_dims": json.dumps(list(spec.input.dims)),
            "batch_axis": "0 (symbolic 'batch') on every input and output",
            "mean": ",".join(f"{v:g}" for v in spec.normalize.mean),
            "std": ",".join(f"{v:g}" for v in spec.normalize.std),
            "color_order": "RGB" if spec.normalize.rgb else "BGR",
            "weights_source": self.weights.kind,
            "weights_sha256": self.weights.sha256 or "",
            SPEC_PROP: json.dumps(spec_to_dict(spec), sort_keys=True),
            **readable_props(spec),
            **self.weights.license.props(),
        }
        if self.weights.kind == "seeded":
            props["warning"] = SEEDED_WARNING
            props["weights_seed"] = str(self.weights.seed)  # lets verify --reference torch rebuild the model
        return props

    def stamp(self, model: onnx.ModelProto) -> onnx.ModelProto:
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, self.metadata_props())
        model.producer_name = "facebatch"
        model.producer_version = __version__
        return model

    def sidecar_body(self) -> dict[str, Any]:
        """The export's own sidecar fields (``facebatch.core.publish`` writes the header)."""
        return {
            "opset": self.opset,
            "spec": spec_to_dict(self.spec),
            "weights": self.weights.to_dict() | ({"parity_note": self.parity_gate.note} if self.parity_gate else {}),
            "license": self.weights.license.to_dict(),
        }

    def source(self) -> dict[str, Any]:
        """What the artifact was made from: its weights file and sha256, or the seed."""
        return {
            "weights": self.weights.path,
            "sha256": self.weights.sha256,
            "kind": self.weights.kind,
            "seed": self.weights.seed,
        }

    def proof(self) -> dict[str, Any]:
        """Parity of the exported ONNX with the torch model (the import proof of ONNX weights is in ``weights``)."""
        return {
            "passed": all(r.passed for r in self.parity),
            "parity_torch_vs_onnxruntime": [r.to_dict() for r in self.parity],
        }
