"""Which exporter a request goes to: an SCRFD detector or an ArcFace embedder, decided from
the model name, a config file, or what ONNX weights are (``detect_family``)."""

from __future__ import annotations

from pathlib import Path

from facebatch.configs.arcface import is_arcface_name
from facebatch.configs.family import describe_family, detect_family
from facebatch.configs.spec import Family
from facebatch.errors import SpecError, WeightsError
from facebatch.onnx_graph import load_onnx


def export_family(model: str | None, config: Path | None, weights: Path | None) -> Family:
    """SCRFD or ARCFACE; a named model and ONNX weights of the other family are refused."""
    if weights is not None and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} does not exist")
    named = None
    if model is not None:
        named = Family.ARCFACE if is_arcface_name(model) else Family.SCRFD
    elif config is not None:
        named = Family.SCRFD
    if weights is None or Path(weights).suffix.lower() != ".onnx":
        if named is None:
            raise SpecError("name a model (see 'facebatch models'), or pass --config FILE.py or ONNX --weights")
        return named
    found = detect_family(load_onnx(weights, "weights file", WeightsError))
    if found is None:
        raise WeightsError(f"{Path(weights).name} is {describe_family(None)}; it cannot be re-exported")
    exported = Family.SCRFD if found is Family.SCRFD else Family.ARCFACE  # any embedder file is tried as ArcFace weights
    if named is not None and named is not exported:
        wanted = "an ArcFace network" if named is Family.ARCFACE else "an SCRFD variant"
        raise SpecError(f"{Path(weights).name} is {describe_family(found)}, but {model or '--config'} names {wanted}; "
                        "drop the name (it is inferred from the file)")  # fmt: skip
    return exported
