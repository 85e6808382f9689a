"""The use case of ``facebatch describe``: the spec (YAML) of a foreign ONNX face embedder, from the values the
caller states (over a spec file it started), checked against the graph; the rest read from the graph or assumed,
each marked so in the YAML."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.configs.embedder import embedder_spec, embedder_yaml, stated_embedder
from facebatch.configs.family import describe_family, detect_family
from facebatch.configs.spec import Family
from facebatch.configs.spec_io import stored_spec
from facebatch.core.atomic import check_output_file, write_text_atomic
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import load_onnx


@dataclass
class DescribeOptions:
    model: Path
    out: Path | None = None  # the YAML file to write; None: only returned
    embedder_spec: Path | None = None  # a spec the caller started: its values, under those stated here
    # single values stated (spec keys: input_size, mean, std, color_order, embedding_size, input, output); None: unstated
    values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.out = None if self.out is None else Path(self.out)
        self.embedder_spec = None if self.embedder_spec is None else Path(self.embedder_spec)


@dataclass
class DescribeResult:
    yaml: str  # the spec, as written (or to print)
    written: Path | None = None  # where it was written; None: not asked to


def describe(options: DescribeOptions) -> DescribeResult:
    """The spec of ``options.model`` (a foreign face embedder), written to ``options.out`` when given (never over
    the model); our artifacts and detectors are refused: they need no spec."""
    inputs = [options.model] + ([options.embedder_spec] if options.embedder_spec is not None else [])
    if options.out is not None:
        check_output_file(options.out, "out", inputs)
    model = load_onnx(options.model, "model file", SpecError)
    ours, family = stored_spec(model) is not None, detect_family(model)
    if ours or family is not Family.EMBEDDER:
        what = "carries its own facebatch spec" if ours else f"is {describe_family(family)}"
        raise SpecError(
            f"{options.model.name} {what}; describe writes specs of foreign face embedders (verify reads "
            "detectors by their outputs and our artifacts by their metadata)"
        )
    description, stated = stated_embedder(options.embedder_spec, options.values)
    spec = embedder_spec(model, description, options.model.name)
    resolved = description.with_overrides(
        name=description.name or spec.name,
        input_size=spec.input_size,
        embedding_size=spec.embedding_size,
        input=spec.input.name,
        output=spec.outputs[0].name,
    )
    folder = Path(".") if options.out is None else options.out.parent  # model: is relative to the spec
    text = embedder_yaml(
        resolved, stated, options.model.name, os.path.relpath(options.model.resolve(), folder.resolve())
    )
    if options.out is not None:
        write_text_atomic(options.out, text, "out")
    return DescribeResult(text, options.out)
