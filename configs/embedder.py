"""Bring your own embedder: describe any ONNX face embedder with an [N,3,H,W] input by a
few values (input size, mean/std, colour order, embedding size) — on the command line or
in a small YAML file — and get the same ``ModelSpec`` our own ArcFace artifacts carry, so
verify, bench and the pipeline treat it like ours.

    # mobilefacenet_128d.yaml
    name: mobilefacenet_128d
    input_size: 112          # or [height, width]
    mean: 127.5              # or [r, g, b] in the colour order below
    std: 127.5
    color_order: RGB
    embedding_size: 128
    # input: input           # optional: graph tensor names, when the graph has several
    # output: output

Whatever the file leaves out is read from the graph (names, a fixed input size, the
embedding size); what it states is checked against the graph.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import onnx
import yaml

from facebatch.configs.arcface import (
    ALIGNMENT_DESCRIPTION,
    ALIGNMENT_TEMPLATE_112,
    ARCFACE_INPUT_SIZE,
    ARCFACE_NORMALIZE,
    embedder_outputs,
)
from facebatch.configs.spec import BATCH, Family, ModelSpec, Normalize, TensorSpec
from facebatch.configs.yaml_file import read_yaml
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import io_dims

COLOR_ORDERS = ("RGB", "BGR")


def _triple(value: Any, key: str) -> tuple[float, float, float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise SpecError(f"embedder spec: {key} must be a number or three numbers, got {value!r}") from None
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3 or (key == "std" and min(numbers) <= 0):
        raise SpecError(
            f"embedder spec: {key} must be one or three {'positive ' if key == 'std' else ''}numbers, got {value!r}"
        )
    return (numbers[0], numbers[1], numbers[2])


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) not in (1, 2) or not all(isinstance(v, int) and v > 0 for v in values):
        raise SpecError(f"embedder spec: input_size must be N or [height, width] of positive integers, got {value!r}")
    return (values[0], values[-1])


MODEL_KEY = "model"  # in a spec given as the embedder itself: its ONNX file, relative to the spec


@dataclass(frozen=True)
class EmbedderDescription:
    """What a user states about an embedder; None means "read it from the graph"."""

    name: str | None = None
    input_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = ARCFACE_NORMALIZE.mean
    std: tuple[float, float, float] = ARCFACE_NORMALIZE.std
    color_order: str = "RGB"
    embedding_size: int | None = None
    input: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        if self.color_order not in COLOR_ORDERS:
            raise SpecError(f"embedder spec: color_order must be RGB or BGR, got {self.color_order!r}")
        if self.embedding_size is not None and (not isinstance(self.embedding_size, int) or self.embedding_size < 1):
            raise SpecError(f"embedder spec: embedding_size must be a positive integer, got {self.embedding_size!r}")

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "embedder spec") -> EmbedderDescription:
        known = {f.name for f in fields(cls)} | {"family", MODEL_KEY}  # model: names the file, not how to run it
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{source}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if data.get("family", "embedder") != "embedder":
            raise SpecError(f"{source}: family must be 'embedder', got {data['family']!r}")
        values: dict[str, Any] = {k: v for k, v in data.items() if k not in ("family", MODEL_KEY) and v is not None}
        if "input_size" in values:
            values["input_size"] = _size(values["input_size"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = _triple(values[key], key)
        if "color_order" in values:
            values["color_order"] = str(values["color_order"]).upper()
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        data: dict[str, Any] = {"family": "embedder"}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    def with_overrides(self, **overrides: Any) -> EmbedderDescription:
        """Command-line values win over the file's."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given) if given else self


def read_embedder_mapping(path: Path) -> dict[str, Any]:
    """The keys an embedder spec file states, as written."""
    data = read_yaml(path, "embedder spec")
    if not isinstance(data, dict):
        raise SpecError(f"embedder spec {path} must be a mapping of keys (input_size, mean, std, …)")
    return data


def read_embedder_description(path: Path) -> EmbedderDescription:
    """A spec given beside its model (an ``embedder_spec``): what it says (the file it names under
    ``model:``, which describe writes, is the caller's embedder here)."""
    return EmbedderDescription.from_mapping(read_embedder_mapping(path), str(path))


def stated_embedder(spec_file: Path | None, values: Mapping[str, Any]) -> tuple[EmbedderDescription, set[str]]:
    """What a spec file and single ``values`` (keys of a spec: input_size, mean, std, color_order,
    embedding_size, input, output; each given one wins over the file's) say about a foreign embedder,
    and which keys were stated at all."""
    stated_in_file = read_embedder_mapping(spec_file) if spec_file is not None else {}
    mapping = EmbedderDescription.from_mapping(stated_in_file, str(spec_file)).to_mapping()
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}
    mapping.update(given)
    stated = {k for k, v in stated_in_file.items() if v is not None} | set(given)
    return EmbedderDescription.from_mapping(mapping, "embedder values"), stated


def read_embedder_file(path: Path) -> tuple[Path, EmbedderDescription]:
    """A spec that stands for its model (given as the embedder itself, ``mobilefacenet.yaml``): the
    ONNX file it names under ``model:`` and what it says about it."""
    path = Path(path)
    data = dict(read_embedder_mapping(path))
    model = data.pop(MODEL_KEY, None)
    if not isinstance(model, str) or not model:
        raise SpecError(
            f"{path} does not name its ONNX file; add '{MODEL_KEY}: FILE.onnx' (relative to the spec), "
            "or pass the .onnx as the embedder and this spec as its embedder_spec",
            field="embedder_spec",
        )
    model_path = Path(model) if Path(model).is_absolute() else path.parent / model
    if not model_path.is_file():
        raise SpecError(f"{path} names {MODEL_KEY} {model}, and {model_path} does not exist")
    return model_path, EmbedderDescription.from_mapping(data, str(path))


READ_FROM_GRAPH = ("input_size", "embedding_size", "input", "output")
ASSUMED_PREPROCESSING = ("mean", "std", "color_order")


def embedder_yaml(resolved: EmbedderDescription, stated: set[str], source: str, model: str | None = None) -> str:
    """The spec file ``facebatch describe`` writes: every value, each marked as given (by the
    user), read from the graph, or assumed (a default the graph cannot confirm); ``model``, the
    ONNX file relative to the spec, makes the spec stand for its model (``--embedder spec.yaml``)."""
    lines = [
        f"# embedder spec for {source}, checked against its graph by facebatch",
        "# each value says where it came from; an assumed one is a default the graph cannot confirm: check it",
    ]
    if model is not None:
        lines.append(
            f"{MODEL_KEY}: {yaml.safe_dump([model], default_flow_style=True, width=1000).strip()[1:-1]}"
            "  # the ONNX file, relative to this spec"
        )
    for key, value in resolved.to_mapping().items():
        if key == "family":
            why = ""
        elif key in stated:
            why = "given"
        elif key in READ_FROM_GRAPH:
            why = "read from the graph"
        elif key in ASSUMED_PREPROCESSING:
            why = f"assumed: ArcFace preprocessing; state --{key.replace('_', '-')} if your model differs"
        else:  # the name
            why = "assumed: the file's name"
        value_text = yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[
            1:-1
        ]  # one line, quoted if needed
        lines.append(f"{key}: {value_text}" + (f"  # {why}" if why else ""))
    return "\n".join(lines) + "\n"


def _pick(names: list[str], wanted: str | None, kind: str, source: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise SpecError(f"{source} has no {kind} {wanted!r}; its {kind}s are {', '.join(names)}")
        return wanted
    if len(names) != 1:
        raise SpecError(
            f"{source} has {len(names)} {kind}s ({', '.join(names)}); name the embedding one as embedder_{kind}",
            field=f"embedder_{kind}",
        )
    return names[0]


def embedder_spec(model: onnx.ModelProto, description: EmbedderDescription, source: str) -> ModelSpec:
    """The spec of a foreign embedder graph, checked against it."""
    dims = io_dims(model)
    output_names = [o.name for o in model.graph.output]
    input_name = _pick([n for n in dims if n not in output_names], description.input, "input", source)
    output_name = _pick(output_names, description.output, "output", source)
    in_dims, out_dims = dims[input_name], dims[output_name]
    if len(in_dims) != 4 or in_dims[1] not in (3, None) and not isinstance(in_dims[1], str):
        raise SpecError(f"{source}: input {input_name} has dims {in_dims}; an embedder takes [N,3,H,W]")
    graph_hw = tuple(d if isinstance(d, int) and d > 0 else None for d in in_dims[2:])
    size = description.input_size
    if size is None:
        if None in graph_hw:
            raise SpecError(f"{source}: input {input_name} has symbolic height/width; state input_size")
        size = (graph_hw[0], graph_hw[1])
    for label, have, want in zip(("height", "width"), graph_hw, size, strict=False):
        if have is not None and have != want:
            raise SpecError(f"{source}: input {input_name} is fixed to {label} {have}, the spec says {want}")
    trailing = out_dims[1:]
    if not trailing or not all(isinstance(d, int) and d > 0 for d in trailing):
        if description.embedding_size is None or len(trailing) != 1:
            raise SpecError(f"{source}: output {output_name} has dims {out_dims}; state embedding_size")
        trailing = [description.embedding_size]
    graph_size = math.prod(trailing)
    if description.embedding_size is not None and description.embedding_size != graph_size:
        raise SpecError(
            f"{source}: output {output_name} holds {graph_size} values per frame, the spec says {description.embedding_size}"
        )
    outputs = embedder_outputs(output_name, graph_size)
    if len(trailing) > 1:  # e.g. [N, 512, 1, 1]: compare the tensor as it is
        outputs = (replace(outputs[0], dims=(BATCH, *trailing)),)
    name = description.name or Path(source).stem
    return ModelSpec(
        name=name,
        family=Family.EMBEDDER,
        inputs=(TensorSpec(input_name, (BATCH, 3, size[0], size[1])),),
        outputs=outputs,
        normalize=Normalize(description.mean, description.std, rgb=description.color_order == "RGB"),
        input_size=size,
        default_filename=f"{name}_batch.onnx",
        embedding_size=graph_size,
        alignment_template=ALIGNMENT_TEMPLATE_112 if size == (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE) else None,
        descriptions={"alignment": ALIGNMENT_DESCRIPTION} if size == (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE) else {},
    )
