"""Specs to and from plain JSON-able dicts (ONNX metadata, sidecars)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from facebatch.configs.spec import ModelSpec, Normalize, ShapeRange, TensorSpec


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["details"] = dict(spec.details)
    return data


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    def tensor(t: dict[str, Any]) -> TensorSpec:
        return TensorSpec(t["name"], tuple(t["dims"]), t.get("atol", 1e-4), t.get("rtol", 0.0), t.get("min_cosine"))

    norm = data["normalize"]
    return ModelSpec(
        name=data["name"],
        family=data["family"],
        inputs=tuple(tensor(t) for t in data["inputs"]),
        outputs=tuple(tensor(t) for t in data["outputs"]),
        normalize=Normalize(tuple(norm["mean"]), tuple(norm["std"]), bool(norm["rgb"])),
        batch=ShapeRange(**data.get("batch", {"min": 1, "opt": 16, "max": 32})),
        default_filename=data.get("default_filename", ""),
        details=data.get("details", {}),
    )
