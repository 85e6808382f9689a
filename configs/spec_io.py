"""Specs to and from plain JSON-able dicts (ONNX metadata, sidecars), and the spec a
facebatch artifact carries in its ``metadata_props``."""

from __future__ import annotations

import json
from typing import Any

import onnx

from facebatch.configs.precision import Precision
from facebatch.configs.spec import Family, HeadLayout, ModelSpec, Normalize, ShapeRange, TensorSpec
from facebatch.core.errors import SpecError

SPEC_FORMAT = 2  # 1: before typed fields (everything under "details")
SPEC_PROP = "spec"  # the metadata_props key that holds the spec as JSON


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    def tensor(t: TensorSpec) -> dict[str, Any]:
        return {"name": t.name, "dims": list(t.dims), "atol": t.atol, "rtol": t.rtol, "min_cosine": t.min_cosine}

    head = spec.head
    return {
        "format": SPEC_FORMAT,
        "name": spec.name,
        "family": spec.family.value,
        "inputs": [tensor(t) for t in spec.inputs],
        "outputs": [tensor(t) for t in spec.outputs],
        "normalize": {"mean": list(spec.normalize.mean), "std": list(spec.normalize.std), "rgb": spec.normalize.rgb},
        "input_size": list(spec.input_size),
        "batch": {"min": spec.batch.min, "opt": spec.batch.opt, "max": spec.batch.max},
        "default_filename": spec.default_filename,
        "dynamic_size": spec.dynamic_size,
        "head": None
        if head is None
        else {
            "strides": list(head.strides),
            "anchors_per_location": head.anchors_per_location,
            "use_kps": head.use_kps,
        },
        "embedding_size": spec.embedding_size,
        "alignment_template": None if spec.alignment_template is None else [list(p) for p in spec.alignment_template],
        "descriptions": dict(spec.descriptions),
        "precision": spec.precision.value,
    }


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """A spec written by ``spec_to_dict``; one from an older facebatch is refused by name."""
    if data.get("format") != SPEC_FORMAT:
        raise SpecError(
            f"the spec was written by an older facebatch (format {data.get('format', 1)}, this one reads {SPEC_FORMAT}); re-export the artifact"
        )

    def tensor(t: dict[str, Any]) -> TensorSpec:
        return TensorSpec(t["name"], tuple(t["dims"]), t["atol"], t["rtol"], t["min_cosine"])

    norm, head, template = data["normalize"], data["head"], data["alignment_template"]
    return ModelSpec(
        name=data["name"],
        family=Family(data["family"]),
        inputs=tuple(tensor(t) for t in data["inputs"]),
        outputs=tuple(tensor(t) for t in data["outputs"]),
        normalize=Normalize(tuple(norm["mean"]), tuple(norm["std"]), bool(norm["rgb"])),
        input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
        batch=ShapeRange(**data["batch"]),
        default_filename=data["default_filename"],
        dynamic_size=bool(data["dynamic_size"]),
        head=None
        if head is None
        else HeadLayout(tuple(head["strides"]), int(head["anchors_per_location"]), bool(head["use_kps"])),
        embedding_size=data["embedding_size"],
        alignment_template=None if template is None else tuple((float(x), float(y)) for x, y in template),
        descriptions=data["descriptions"],
        precision=Precision(data.get("precision", Precision.FP32.value)),  # absent before FP16 artifacts existed
    )


def stored_spec(model: onnx.ModelProto) -> ModelSpec | None:
    """The spec a facebatch artifact carries; None for any other ONNX file."""
    props = {p.key: p.value for p in model.metadata_props}
    if SPEC_PROP not in props:
        return None
    try:
        return spec_from_dict(json.loads(props[SPEC_PROP]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"the facebatch spec in this file's metadata is unreadable ({exc}); re-export it") from exc
