"""What is this ONNX file? A ``VerifyTarget`` carries the spec every check works from.

* our artifacts: the spec stored in ``metadata_props`` by the exporter;
* other SCRFD detectors (6 or 9 outputs of 1/4/10 channels): a spec over the graph's own
  output names, with the input size from the graph or ``--size``;
* other embedders (one output): a spec from ``--embedder-spec``/flags, else ArcFace's
  preprocessing with a note that it was assumed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import onnx

from facebatch.configs.embedder import EmbedderDescription, embedder_spec
from facebatch.configs.scrfd import OUTPUT_CHANNELS, SCRFD_NORMALIZE, HeadLayout, check_input_size
from facebatch.configs.spec import BATCH, ModelSpec, TensorSpec
from facebatch.configs.spec_io import spec_from_dict
from facebatch.environment import file_sha256
from facebatch.errors import SpecError
from facebatch.onnx_graph import graph_input, io_dims, load_onnx

DEFAULT_DETECTOR_SIZE = 640
SCRFD_OUTPUT_COUNTS = {6: False, 9: True}  # outputs → landmarks


@dataclass
class VerifyTarget:
    path: Path
    model: onnx.ModelProto
    spec: ModelSpec
    source: str  # where the spec came from, in words
    layout: HeadLayout | None = None  # SCRFD only
    notes: list[str] = field(default_factory=list)

    @cached_property
    def sha256(self) -> str:
        """Hashed once: the report and the torch reference's sidecar check both need it."""
        return file_sha256(self.path)

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.spec.details["input_size"]
        return int(h), int(w)


def load_model(path: Path) -> onnx.ModelProto:
    model = load_onnx(path, "model file", SpecError)
    if not model.graph.output:
        raise SpecError(f"{path} holds a graph without outputs; is it truncated or not an ONNX model?")
    return model


def _stored_spec(model: onnx.ModelProto) -> ModelSpec | None:
    props = {p.key: p.value for p in model.metadata_props}
    if "spec" not in props:
        return None
    try:
        return spec_from_dict(json.loads(props["spec"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"the facebatch spec in this file's metadata is unreadable ({exc}); re-export it") from exc


def _looks_like_scrfd(model: onnx.ModelProto) -> bool:
    dims = io_dims(model)
    channels = [dims[o.name][-1] if dims[o.name] else None for o in model.graph.output]
    return len(channels) in SCRFD_OUTPUT_COUNTS and all(c in OUTPUT_CHANNELS.values() for c in channels)


def _detector_target(path: Path, model: onnx.ModelProto, size: tuple[int, int] | None) -> VerifyTarget:
    input_name, dims = graph_input(model, SpecError)
    graph_hw = [d if isinstance(d, int) and d > 0 else None for d in dims[2:4]] if len(dims) == 4 else [None, None]
    notes = []
    if size is None:
        if None in graph_hw:
            size = (DEFAULT_DETECTOR_SIZE, DEFAULT_DETECTOR_SIZE)
            notes.append(f"input size is symbolic; checking at {size[0]}x{size[1]} (change with --size)")
        else:
            size = (graph_hw[0], graph_hw[1])
    check_input_size(*size)
    for label, have, want in zip(("height", "width"), graph_hw, size):
        if have is not None and have != want:
            raise SpecError(f"{path.name} is fixed to {label} {have}; --size {want} cannot run")
    layout = HeadLayout(strides=(8, 16, 32), anchors_per_location=2, use_kps=SCRFD_OUTPUT_COUNTS[len(model.graph.output)])
    out_dims = io_dims(model)
    outputs = []
    for o in model.graph.output:
        outputs.append(TensorSpec(o.name, (BATCH, f"rows_{o.name}", out_dims[o.name][-1]), atol=1e-4))
    spec = ModelSpec(
        name=path.stem,
        family="scrfd",
        inputs=(TensorSpec(input_name, (BATCH, 3, size[0], size[1])),),
        outputs=tuple(outputs),
        normalize=SCRFD_NORMALIZE,
        details={"input_size": list(size), "strides": list(layout.strides), "anchors_per_location": 2, "use_kps": layout.use_kps},
    )
    return VerifyTarget(path, model, spec, "inferred: SCRFD detector (by its outputs)", layout, notes)


def target_from_onnx(
    path: Path,
    embedder: EmbedderDescription | None = None,
    size: tuple[int, int] | None = None,
) -> VerifyTarget:
    path = Path(path)
    model = load_model(path)
    stored = _stored_spec(model)
    if stored is not None:
        layout = None
        if stored.family == "scrfd":
            d = stored.details
            layout = HeadLayout(tuple(d["strides"]), int(d["anchors_per_location"]), bool(d["use_kps"]))
        if size is not None and tuple(stored.details.get("input_size", ())) != tuple(size):
            raise SpecError(f"{path.name} was exported for input {stored.details.get('input_size')}; drop --size")
        return VerifyTarget(path, model, stored, "facebatch metadata", layout)
    if _looks_like_scrfd(model) and embedder is None:
        return _detector_target(path, model, size)
    if len(model.graph.output) == 1 or embedder is not None:
        notes = []
        if embedder is None:
            embedder = EmbedderDescription()
            notes.append("no embedder spec given: assuming ArcFace preprocessing (RGB, (x-127.5)/127.5)")
        if size is not None:
            embedder = embedder.with_overrides(input_size=size)
        spec = embedder_spec(model, embedder, path.name)
        return VerifyTarget(path, model, spec, "embedder spec" if not notes else "inferred: embedder (one output)", None, notes)
    raise SpecError(
        f"{path.name} is neither an SCRFD detector (6 or 9 outputs of 1/4/10 channels) nor an embedder (one output); "
        "describe an embedder with --embedder-spec"
    )
