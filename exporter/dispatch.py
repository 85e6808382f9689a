"""Which exporter a request goes to: an SCRFD detector or an ArcFace embedder, decided from
the model name, a config file, or what ONNX weights are (``detect_family``); ``export_model``
runs it (``facebatch.workflows.export`` is the command's use case)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.configs.arcface import ARCFACE_INPUT_SIZE, EMBEDDING_SIZE, is_arcface_name
from facebatch.configs.family import describe_family, detect_family
from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE
from facebatch.configs.spec import Family
from facebatch.core.errors import SpecError, WeightsError
from facebatch.core.onnx_graph import load_onnx
from facebatch.exporter.options import ArtifactOptions

if TYPE_CHECKING:
    from facebatch.exporter.export_job import ExportResult


def export_family(model: str | None, config: Path | None, weights: Path | None) -> Family:
    """SCRFD or ARCFACE; a named model and ONNX weights of the other family are refused."""
    if weights is not None and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} does not exist", field="weights")
    named = None
    if model is not None:
        named = Family.ARCFACE if is_arcface_name(model) else Family.SCRFD
    elif config is not None:
        named = Family.SCRFD
    if weights is None or Path(weights).suffix.lower() != ".onnx":
        if named is None:
            raise SpecError(
                "name a model (the models command lists them), or give a config file (.py) or ONNX weights",
                field="model",
            )
        return named
    found = detect_family(load_onnx(weights, "weights file", WeightsError))
    if found is None:
        raise WeightsError(
            f"{Path(weights).name} is {describe_family(None)}; it cannot be re-exported", field="weights"
        )
    exported = (
        Family.SCRFD if found is Family.SCRFD else Family.ARCFACE
    )  # any embedder file is tried as ArcFace weights
    if named is not None and named is not exported:
        wanted = "an ArcFace network" if named is Family.ARCFACE else "an SCRFD variant"
        raise SpecError(
            f"{Path(weights).name} is {describe_family(found)}, but {model or 'the config'} names {wanted}; "
            "drop the name (it is inferred from the file)",
            field="model",
        )
    return exported


def export_model(
    model: str | None = None,
    *,
    weights: Path | None = None,
    config: Path | None = None,
    size: tuple[int, int] | None = None,
    dynamic_size: bool = False,
    embedding_size: int | None = None,
    settings: ArtifactOptions | None = None,
) -> ExportResult:
    """Export one model, proven, into ``settings.out_dir``: an SCRFD variant (``size`` H, W; default
    DEFAULT_SCRFD_SIZE square) or an ArcFace network, named or inferred from ONNX ``weights``;
    without weights, seeded ones (for checking and benchmarking only)."""
    settings = settings or ArtifactOptions()
    common = asdict(settings)
    if export_family(model, config, weights) is Family.ARCFACE:
        from facebatch.exporter.arcface_export import ArcFaceExportOptions, export_arcface

        if size is not None and tuple(size) != (ARCFACE_INPUT_SIZE, ARCFACE_INPUT_SIZE):
            raise SpecError(
                f"ArcFace networks take {ARCFACE_INPUT_SIZE}x{ARCFACE_INPUT_SIZE} (their fc expects a 7x7 grid); "
                "drop size",
                field="size",
            )
        if config is not None:
            raise SpecError("config applies to SCRFD detectors only", field="config")
        if dynamic_size:
            raise SpecError("dynamic_size applies to SCRFD detectors only", field="dynamic_size")
        options = ArcFaceExportOptions(
            network=model, weights=weights, embedding_size=embedding_size or EMBEDDING_SIZE, **common
        )
        return export_arcface(options)
    from facebatch.exporter.scrfd_export import ScrfdExportOptions, export_scrfd

    if embedding_size is not None:
        raise SpecError("embedding_size applies to ArcFace networks only", field="embedding_size")
    height, width = size or (DEFAULT_SCRFD_SIZE, DEFAULT_SCRFD_SIZE)
    return export_scrfd(
        ScrfdExportOptions(
            variant=model,
            config=config,
            height=height,
            width=width,
            dynamic_size=dynamic_size,
            weights=weights,
            **common,
        )
    )
