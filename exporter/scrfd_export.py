"""The SCRFD export job: variant/config + weights → populated torch model; the rest
(ONNX, simplification, proofs, atomic artifacts) is the shared ``export_job``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facebatch.configs.mmdet_config import read_scrfd_model_config
from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE, SCRFD_NORMALIZE, check_input_size, scrfd_config, scrfd_spec
from facebatch.core.atomic import ensure_writable_dir
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError, VerificationFailed, WeightsError
from facebatch.core.progress import step
from facebatch.engines.pipeline.preprocess import proof_frames
from facebatch.exporter.export_job import ExportResult, export_artifact
from facebatch.exporter.metadata import WeightsInfo
from facebatch.exporter.models.scrfd import SCRFD, build_scrfd, seeded_init
from facebatch.exporter.options import ArtifactOptions
from facebatch.exporter.weights.checkpoint import load_state_dict_strict, read_state_dict
from facebatch.exporter.weights.scrfd_import import prove_scrfd_import, scrfd_from_onnx, source_input_size

IMPORT_PROOF_FRAMES = 4


@dataclass
class ScrfdExportOptions(ArtifactOptions):
    variant: str | None = None  # a released config name; inferred from ONNX weights if None
    config: Path | None = None  # an insightface SCRFD config .py (custom-trained models)
    height: int = DEFAULT_SCRFD_SIZE
    width: int = DEFAULT_SCRFD_SIZE
    dynamic_size: bool = False
    weights: Path | None = None


ScrfdExportRequest = ScrfdExportOptions  # alias for one release


def _model_config(options: ScrfdExportOptions) -> tuple[str | None, dict[str, Any] | None]:
    if options.config is not None:
        return options.variant or Path(options.config).stem, read_scrfd_model_config(Path(options.config))
    if options.variant is not None:
        return options.variant, scrfd_config(options.variant)
    return None, None


def scrfd_model_with_weights(options: ScrfdExportOptions) -> tuple[SCRFD, str, WeightsInfo]:
    """Resolve variant/config and weights into a populated eval-mode model."""
    variant, model_cfg = _model_config(options)
    weights = options.weights
    if weights is not None and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} does not exist", field="weights")
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        with step(f"import weights from {Path(weights).name}"):
            model, variant = scrfd_from_onnx(Path(weights), variant=variant, model_cfg=model_cfg)
        h, w = source_input_size(Path(weights), fallback=(options.height, options.width))
        frames = proof_frames(IMPORT_PROOF_FRAMES, h, w, SCRFD_NORMALIZE, options.photos, seed=options.seed)
        with step(f"prove the import reproduces {Path(weights).name} at {h}x{w}"):
            proof = prove_scrfd_import(model, Path(weights), frames)
        if not proof.passed:
            raise VerificationFailed(
                f"imported weights do not reproduce {Path(weights).name}: {proof.summary()}", field="weights"
            )
        return model, variant, WeightsInfo("onnx", str(weights), file_sha256(Path(weights)), proof=proof)
    if variant is None or model_cfg is None:
        raise SpecError(
            "name a variant (e.g. scrfd_10g_bnkps) or give its config file; only ONNX weights can reveal it",
            field="model",
        )
    model = build_scrfd(**model_cfg)
    if weights is None:
        return seeded_init(model, options.seed).eval(), variant, WeightsInfo("seeded", seed=options.seed)
    with step(f"load checkpoint {Path(weights).name}"):
        load_state_dict_strict(model, read_state_dict(Path(weights)), Path(weights).name)
    return model.eval(), variant, WeightsInfo("checkpoint", str(weights), file_sha256(Path(weights)))


def export_scrfd(options: ScrfdExportOptions) -> ExportResult:
    check_input_size(options.height, options.width)
    options.check()
    out_dir = ensure_writable_dir(Path(options.out_dir))  # fail before the slow work
    model, variant, weights = scrfd_model_with_weights(options)
    spec = scrfd_spec(
        variant,
        model.layout,
        options.height,
        options.width,
        dynamic_size=options.dynamic_size,
        seeded=weights.kind == "seeded",
    )
    frames = proof_frames(
        max(options.parity_batch_sizes), options.height, options.width, SCRFD_NORMALIZE, options.photos, options.seed
    )
    return export_artifact(
        model, spec, weights, out_dir, options.name, options.opset, frames, options.parity_batch_sizes
    )
