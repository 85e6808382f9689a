"""The SCRFD export job: weights → torch model → ONNX → simplified, proven, stamped artifact.

Stages are the ``*_from_*`` functions of this package; this module only sequences them,
shows progress, and writes the two artifacts (``.onnx`` + sidecar ``.json``) atomically:
both are produced in a temp directory beside the target and renamed into place only
after every proof passed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from facebatch.atomic import ensure_writable_dir, write_text_atomic
from facebatch.configs.mmdet_config import read_scrfd_model_config
from facebatch.configs.scrfd import SCRFD_NORMALIZE, check_input_size, scrfd_config, scrfd_spec
from facebatch.configs.spec import ModelSpec
from facebatch.engines.preprocess import proof_frames
from facebatch.environment import environment, file_sha256
from facebatch.errors import ExportError, SpecError, WeightsError
from facebatch.exporter.checkpoint import load_state_dict_strict, read_state_dict
from facebatch.exporter.metadata import SEEDED_WARNING, ArtifactRecord, WeightsInfo
from facebatch.exporter.scrfd import SCRFD, build_scrfd, seeded_init
from facebatch.exporter.scrfd_import import prove_scrfd_import, scrfd_from_onnx, source_input_size
from facebatch.exporter.simplify import simplify_onnx
from facebatch.exporter.torch_to_onnx import DEFAULT_OPSET, onnx_from_torch
from facebatch.progress import step, warn
from facebatch.verify.parity import ParityReport
from facebatch.verify.torch_parity import intrinsic_fp32_error, torch_vs_onnx

PARITY_BATCH_SIZES = (1, 2, 7, 32)
IMPORT_PROOF_FRAMES = 4
CONDITIONING_FRAMES = 4
SEEDED_MARGIN = 4.0  # seeded weights: parity gate = max(spec atol, margin × the model's own fp32 error)


@dataclass
class ScrfdExportRequest:
    variant: str | None = None  # a released config name; inferred from ONNX weights if None
    config: Path | None = None  # an insightface SCRFD config .py (custom-trained models)
    height: int = 320
    width: int = 320
    dynamic_size: bool = False
    weights: Path | None = None
    out_dir: Path = Path("build/onnx")
    name: str | None = None
    opset: int = DEFAULT_OPSET
    parity_batch_sizes: Sequence[int] = PARITY_BATCH_SIZES
    photos: Sequence[Path] = ()
    seed: int = 0


@dataclass
class ScrfdExportResult:
    onnx_path: Path
    sidecar_path: Path
    spec: ModelSpec
    weights: WeightsInfo
    parity: list[ParityReport] = field(default_factory=list)
    parity_atol: float | None = None  # None: the spec's per-output tolerances

    @property
    def max_parity_diff(self) -> float:
        return max(r.max_abs_diff for r in self.parity)


def _model_config(request: ScrfdExportRequest) -> tuple[str | None, dict[str, Any] | None]:
    if request.config is not None:
        return request.variant or Path(request.config).stem, read_scrfd_model_config(Path(request.config))
    if request.variant is not None:
        return request.variant, scrfd_config(request.variant)
    return None, None


def scrfd_model_with_weights(request: ScrfdExportRequest) -> tuple[SCRFD, str, WeightsInfo]:
    """Resolve variant/config and weights into a populated eval-mode model."""
    variant, model_cfg = _model_config(request)
    weights = request.weights
    if weights is not None and not Path(weights).is_file():
        raise WeightsError(f"weights file {weights} does not exist")
    if weights is not None and Path(weights).suffix.lower() == ".onnx":
        with step(f"import weights from {Path(weights).name}"):
            model, variant = scrfd_from_onnx(Path(weights), variant=variant, model_cfg=model_cfg)
        h, w = source_input_size(Path(weights), default=request.height)
        frames = proof_frames(IMPORT_PROOF_FRAMES, h, w, SCRFD_NORMALIZE, request.photos, seed=request.seed)
        with step(f"prove the import reproduces {Path(weights).name} at {h}x{w}"):
            proof = prove_scrfd_import(model, Path(weights), frames)
        if not proof.passed:
            raise WeightsError(f"imported weights do not reproduce {Path(weights).name}: {proof.summary()}")
        return model, variant, WeightsInfo("onnx", str(weights), file_sha256(Path(weights)), proof=proof)
    if variant is None or model_cfg is None:
        raise SpecError("name a variant (e.g. scrfd_10g_bnkps) or pass --config; only ONNX weights can reveal it")
    model = build_scrfd(**model_cfg)
    if weights is None:
        warn(f"no --weights given: {SEEDED_WARNING}")
        return seeded_init(model, request.seed).eval(), variant, WeightsInfo("seeded", seed=request.seed)
    with step(f"load checkpoint {Path(weights).name}"):
        load_state_dict_strict(model, read_state_dict(Path(weights)), Path(weights).name)
    return model.eval(), variant, WeightsInfo("checkpoint", str(weights), file_sha256(Path(weights)))


def export_scrfd(request: ScrfdExportRequest) -> ScrfdExportResult:
    check_input_size(request.height, request.width)
    if not request.parity_batch_sizes or min(request.parity_batch_sizes) < 1:
        raise SpecError("parity batch sizes must be positive integers")
    out_dir = ensure_writable_dir(Path(request.out_dir))  # fail before the slow work
    model, variant, weights = scrfd_model_with_weights(request)
    spec = scrfd_spec(variant, model.layout, request.height, request.width, dynamic_size=request.dynamic_size)
    name = request.name or spec.default_filename
    if not name.endswith(".onnx"):
        name += ".onnx"
    target = out_dir / name
    sidecar_target = target.with_suffix(".json")

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".facebatch-export-") as tmp:
        work = Path(tmp)
        with step(f"export {variant} to ONNX (opset {request.opset}, batch symbolic)"):
            raw = onnx_from_torch(model, spec, work / "raw.onnx", request.opset)
        with step("simplify with onnxsim and prove the batch axis stayed symbolic"):
            simple = simplify_onnx(raw, work / "simplified.onnx", spec)
        frames = proof_frames(
            max(request.parity_batch_sizes), request.height, request.width, SCRFD_NORMALIZE, request.photos, request.seed
        )
        parity_atol = None
        if weights.kind == "seeded":
            with step("measure the seeded model's own fp32 error (fp32 vs fp64 torch)"):
                own_error = intrinsic_fp32_error(model, frames[:CONDITIONING_FRAMES])
            spec_atol = max(t.atol for t in spec.outputs)
            parity_atol = max(spec_atol, SEEDED_MARGIN * own_error)
            weights.parity_note = (
                f"seeded weights: parity gate {parity_atol:.3g} = max(spec atol {spec_atol:g}, "
                f"{SEEDED_MARGIN:g} x the torch model's own fp32-vs-fp64 error {own_error:.3g}); "
                "real weights are held to the spec atol"
            )
            warn(weights.parity_note)
        with step(f"parity torch vs onnxruntime at batch {', '.join(map(str, request.parity_batch_sizes))}"):
            parity = torch_vs_onnx(model, simple, spec, frames, request.parity_batch_sizes, parity_atol)
        failed = [r for r in parity if not r.passed]
        if failed:
            raise ExportError("exported ONNX disagrees with the torch model: " + " | ".join(r.summary() for r in failed))
        record = ArtifactRecord(spec, weights, request.opset, parity)
        final = work / name
        onnx.save(record.stamp(onnx.load(str(simple))), str(final))
        sidecar = record.sidecar(target, file_sha256(final), environment())
        final.replace(target)  # same filesystem: one atomic rename
    # The sidecar names the ONNX file's hash, so it is written once the ONNX stands.
    write_text_atomic(sidecar_target, json.dumps(sidecar, indent=2) + "\n")
    return ScrfdExportResult(target, sidecar_target, spec, weights, parity, parity_atol)
