"""The ArcFace export job: network + weights (arcface_torch ``backbone.pth``, a recognition
ONNX file, or seeded) → populated torch model; the rest is the shared ``export_job``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.configs.arcface import (
    ARCFACE_INPUT_SIZE,
    ARCFACE_NORMALIZE,
    DEFAULT_ARCFACE,
    EMBEDDING_SIZE,
    arcface_network,
    arcface_spec,
)
from facebatch.core.atomic import ensure_writable_dir
from facebatch.core.environment import file_sha256
from facebatch.core.errors import VerificationFailed, WeightsError
from facebatch.core.progress import step
from facebatch.engines.pipeline.preprocess import proof_frames
from facebatch.exporter.export_job import ExportResult, export_artifact
from facebatch.exporter.metadata import WeightsInfo
from facebatch.exporter.models.arcface import ArcFaceBackbone, build_arcface, seeded_arcface
from facebatch.exporter.options import ArtifactOptions
from facebatch.exporter.weights.arcface_import import arcface_from_onnx, prove_arcface_import
from facebatch.exporter.weights.checkpoint import load_state_dict_strict, read_state_dict

IMPORT_PROOF_FRAMES = 8


@dataclass
class ArcFaceExportOptions(ArtifactOptions):
    network: str | None = DEFAULT_ARCFACE  # arcface_r50 / r50 …; inferred from ONNX weights if None
    weights: Path | None = None
    embedding_size: int = EMBEDDING_SIZE  # checkpoints and seeded models; ONNX weights carry their own


ArcFaceExportRequest = ArcFaceExportOptions  # alias for one release


def _frames(count: int, options: ArcFaceExportOptions) -> np.ndarray:
    size = ARCFACE_INPUT_SIZE
    return proof_frames(count, size, size, ARCFACE_NORMALIZE, options.photos, options.seed, fit="center")


def arcface_model_with_weights(options: ArcFaceExportOptions) -> tuple[ArcFaceBackbone, str, WeightsInfo]:
    """Resolve network and weights into a populated eval-mode model."""
    network = arcface_network(options.network) if options.network else None
    weights = Path(options.weights) if options.weights is not None else None
    if weights is not None and not weights.is_file():
        raise WeightsError(f"weights file {weights} does not exist", field="weights")
    if weights is not None and weights.suffix.lower() == ".onnx":
        with step(f"import weights from {weights.name}"):
            model, network = arcface_from_onnx(weights, network)
        with step(f"prove the import reproduces {weights.name}"):
            proof = prove_arcface_import(model, weights, _frames(IMPORT_PROOF_FRAMES, options))
        if not proof.passed:
            raise VerificationFailed(
                f"imported weights do not reproduce {weights.name}: {proof.summary()}", field="weights"
            )
        return model, network, WeightsInfo("onnx", str(weights), file_sha256(weights), proof=proof)
    network = network or arcface_network(DEFAULT_ARCFACE)
    model = build_arcface(network, options.embedding_size)
    if weights is None:
        return seeded_arcface(model, options.seed), network, WeightsInfo("seeded", seed=options.seed)
    with step(f"load checkpoint {weights.name}"):
        load_state_dict_strict(model, read_state_dict(weights), weights.name)
    return model.eval(), network, WeightsInfo("checkpoint", str(weights), file_sha256(weights))


def export_arcface(options: ArcFaceExportOptions) -> ExportResult:
    options.check()
    out_dir = ensure_writable_dir(Path(options.out_dir))  # fail before the slow work
    model, network, weights = arcface_model_with_weights(options)
    spec = arcface_spec(network, model.embedding_size, seeded=weights.kind == "seeded")
    frames = _frames(max(options.parity_batch_sizes), options)
    return export_artifact(
        model, spec, weights, out_dir, options.name, options.opset, frames, options.parity_batch_sizes
    )
