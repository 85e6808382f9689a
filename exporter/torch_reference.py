"""The torch reference (``reference="torch"``): rebuild the PyTorch model an artifact was exported
from, as a check-4 reference.

The model comes from the artifact's metadata (variant or network, size) and its weights:
the seed stored for seeded exports, else the weights file its sidecar names or the caller's
``reference_weights``, whose sha256 must be the one the artifact records. Seeded weights
get the export's documented parity gate. This lives in the exporter, which owns the model
definitions and loaders; verify only runs the reference it is handed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from facebatch.configs.model_file import ModelFile
from facebatch.configs.scrfd import SCRFD_CONFIGS
from facebatch.configs.spec import Family, ModelSpec
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError, WeightsError
from facebatch.core.progress import step
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.torch_runner import TorchRunner
from facebatch.exporter.arcface_export import ArcFaceExportOptions, arcface_model_with_weights
from facebatch.exporter.metadata import WeightsInfo
from facebatch.exporter.scrfd_export import ScrfdExportOptions, scrfd_model_with_weights
from facebatch.exporter.weights.seeded import seeded_parity_gate
from facebatch.verify.reference import Reference, ReferenceFactory, onnx_reference

TORCH = "torch"


class TorchReference(Reference):
    def __init__(self, model: nn.Module, spec: ModelSpec, weights: WeightsInfo) -> None:
        self.model, self.spec, self.weights = model, spec, weights
        source = (
            f"seeded weights, seed {weights.seed}"
            if weights.kind == "seeded"
            else f"{weights.kind} {Path(weights.path or '').name}"
        )
        self.description = f"torch {spec.name} ({source})"

    def runner(self) -> Runner:
        return TorchRunner.from_spec(self.model, self.spec)

    def gate(self, frames: np.ndarray) -> tuple[float | None, str | None]:
        if self.weights.kind != "seeded":
            return None, None
        gate = seeded_parity_gate(self.model, self.spec, frames)
        return gate.atol, gate.note


def _weights_of(target: ModelFile, weights: Path | None) -> tuple[Path | None, int]:
    """(weights file or None for seeded, seed) the artifact was exported from."""
    props = {p.key: p.value for p in target.model.metadata_props}
    kind = props.get("weights_source")
    recorded = target.recorded_weights
    if kind == "seeded":
        if weights is not None:
            raise SpecError(
                f"{target.path.name} was exported with seeded weights; drop reference_weights",
                field="reference_weights",
            )
        seed = props.get("weights_seed", recorded.get("seed"))
        if seed is None:
            raise SpecError(
                f"{target.path.name} records seeded weights but not the seed; re-export it to verify against torch"
            )
        return None, int(seed)
    expected_sha = props.get("weights_sha256") or recorded.get("sha256")
    weights = weights or (Path(recorded["path"]) if recorded.get("path") else None)
    if weights is None or not weights.is_file():
        where = f" (the sidecar names {weights}, which is not there)" if weights is not None else ""
        raise WeightsError(
            f"pass reference_weights: the {kind} file {target.path.name} was exported from, sha256 {expected_sha}{where}",
            field="reference_weights",
        )
    if expected_sha and file_sha256(weights) != expected_sha:
        raise WeightsError(
            f"{weights} is not the file {target.path.name} was exported from (sha256 {expected_sha}); pass that one",
            field="reference_weights",
        )
    return weights, 0


def rebuild_torch_model(
    target: ModelFile, weights: Path | None, config: Path | None, photos: Sequence[Path]
) -> tuple[nn.Module, WeightsInfo]:
    """The populated torch model of one of our artifacts."""
    if target.source != "facebatch metadata":
        raise SpecError(
            f"reference torch needs a facebatch artifact ({target.path.name} carries no facebatch spec); "
            "compare with another ONNX file as the reference",
            field="reference",
        )
    weights, seed = _weights_of(target, weights)
    spec = target.spec
    if spec.family is Family.SCRFD:
        onnx_weights = weights is not None and weights.suffix.lower() == ".onnx"
        if spec.name not in SCRFD_CONFIGS and config is None and not onnx_weights:
            raise SpecError(
                f"{spec.name} is not a released SCRFD config; pass reference_config: the config .py it was exported from",
                field="reference_config",
            )
        h, w = spec.input_size
        options = ScrfdExportOptions(
            variant=spec.name, config=config, height=h, width=w, weights=weights, seed=seed, photos=photos
        )
        model, _, info = scrfd_model_with_weights(options)
        return model, info
    if spec.family is Family.ARCFACE:
        build = ArcFaceExportOptions(
            network=spec.name, weights=weights, embedding_size=spec.embedding_size, seed=seed, photos=photos
        )
        model, _, info = arcface_model_with_weights(build)
        return model, info
    raise SpecError(
        f"reference torch rebuilds SCRFD and ArcFace artifacts, not {spec.family.value} models; compare with another "
        "ONNX file as the reference",
        field="reference",
    )


def torch_reference(weights: Path | None = None, config: Path | None = None) -> ReferenceFactory:
    """The check-4 reference of our artifacts: their torch model, rebuilt."""

    def build(target: ModelFile, photos: Sequence[Path]) -> Reference:
        with step("rebuild the torch model this file was exported from"):
            model, info = rebuild_torch_model(target, weights, config, photos)
        return TorchReference(model, target.spec, info)

    return build


def reference_from_argument(
    source: str | Path | None, weights: Path | None = None, config: Path | None = None
) -> ReferenceFactory | None:
    """Check 4's reference as a caller names it: ``"torch"`` (with its ``weights`` and ``config`` where the
    artifact does not name them), another ONNX file, or None (no reference: check 4 is skipped)."""
    if source is not None and str(source) == TORCH:
        return torch_reference(weights, config)
    for value, name in ((weights, "reference_weights"), (config, "reference_config")):
        if value is not None:
            raise SpecError(f"{name} applies to a torch reference only", field=name)
    if source is None:
        return None
    path = Path(source)
    if not path.exists() and difflib.get_close_matches(str(source), [TORCH], n=1, cutoff=0.6):
        raise SpecError(
            f"reference {str(source)!r} is neither 'torch' nor an existing file; did you mean torch?", field="reference"
        )
    return onnx_reference(path)
