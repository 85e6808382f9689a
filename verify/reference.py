"""Check 4: does the file compute what its reference computes?

* ``torch``: the PyTorch model the artifact was exported from, rebuilt from its metadata
  (variant or network, input size) and weights: the seed stored for seeded exports, else the
  weights file named by the sidecar or ``--reference-weights`` (its sha256 must be the one
  the artifact records);
* another ONNX file, e.g. the official batch-1 model: it runs one frame at a time and both
  sides are mapped to one layout (``canonical_outputs`` unfolds the official 2-D heads).

Per-output atol/rtol come from the spec (cosine for embeddings); every output and batch size
is compared before the check decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facebatch.configs.spec import TensorSpec
from facebatch.engines.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.scrfd_layout import canonical_outputs
from facebatch.environment import file_sha256
from facebatch.errors import SpecError, WeightsError
from facebatch.progress import step
from facebatch.verify.parity import ParityReport, compare_outputs
from facebatch.onnx_graph import graph_input
from facebatch.verify.target import VerifyTarget, load_model

TORCH = "torch"


@dataclass(frozen=True)
class ReferenceRequest:
    source: str  # "torch" or the path of a reference ONNX file
    weights: Path | None = None  # torch: the weights file, when the sidecar is not at hand
    config: Path | None = None  # torch: the SCRFD config .py of a custom-trained detector

    @property
    def is_torch(self) -> bool:
        return self.source == TORCH


@dataclass
class ReferenceResult:
    description: str  # what the file was compared with, in words
    reports: list[ParityReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parity_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """The smallest and the largest tested batch: check 1 already ties every size in between
    to the single-frame run."""
    return tuple(sorted({min(batch_sizes), max(batch_sizes)}))


# ---- torch ---------------------------------------------------------------------------------


def _sidecar_weights(path: Path, sha256: str) -> dict:
    """The sidecar's weights record, if a sidecar for exactly this file lies beside it."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("weights", {}) if isinstance(data, dict) and data.get("sha256") == sha256 else {}


def _reference_weights(target: VerifyTarget, request: ReferenceRequest) -> tuple[Path | None, int]:
    """(weights file or None for seeded, seed) for rebuilding the artifact's torch model."""
    props = {p.key: p.value for p in target.model.metadata_props}
    kind = props.get("weights_source")
    recorded = _sidecar_weights(target.path, target.sha256)
    if kind == "seeded":
        if request.weights is not None:
            raise SpecError(f"{target.path.name} was exported with seeded weights; drop --reference-weights")
        seed = props.get("weights_seed", recorded.get("seed"))
        if seed is None:
            raise SpecError(f"{target.path.name} records seeded weights but not the seed; re-export it to verify against torch")
        return None, int(seed)
    expected_sha = props.get("weights_sha256") or recorded.get("sha256")
    weights = request.weights or (Path(recorded["path"]) if recorded.get("path") else None)
    if weights is None or not weights.is_file():
        where = f" (the sidecar names {weights}, which is not there)" if weights is not None else ""
        raise WeightsError(f"pass --reference-weights: the {kind} file {target.path.name} was exported from, sha256 {expected_sha}{where}")
    if expected_sha and file_sha256(weights) != expected_sha:
        raise WeightsError(f"{weights} is not the file {target.path.name} was exported from (sha256 {expected_sha}); pass that one")
    return weights, 0


def torch_reference(target: VerifyTarget, request: ReferenceRequest, photos: Sequence[Path]):  # noqa: ANN201 - (nn.Module, WeightsInfo)
    """Rebuild the populated torch model of one of our artifacts."""
    if target.source != "facebatch metadata":
        raise SpecError(f"--reference torch needs a facebatch artifact ({target.path.name} carries no facebatch spec); "
                        "compare with another ONNX file: --reference FILE")  # fmt: skip
    weights, seed = _reference_weights(target, request)
    spec = target.spec
    if target.family == "scrfd":
        from facebatch.configs.scrfd import SCRFD_CONFIGS
        from facebatch.exporter.scrfd_export import ScrfdExportRequest, scrfd_model_with_weights

        onnx_weights = weights is not None and weights.suffix.lower() == ".onnx"
        if spec.name not in SCRFD_CONFIGS and request.config is None and not onnx_weights:
            raise SpecError(f"{spec.name} is not a released SCRFD config; pass --reference-config with the config .py it was exported from")
        h, w = target.input_size
        build = ScrfdExportRequest(variant=spec.name, config=request.config, height=h, width=w, weights=weights, seed=seed, photos=photos)
        model, _, info = scrfd_model_with_weights(build)
        return model, info
    if target.family == "arcface":
        from facebatch.exporter.arcface_export import ArcFaceExportRequest, arcface_model_with_weights

        details = spec.details
        build = ArcFaceExportRequest(network=details["network"], weights=weights, embedding_size=int(details["embedding_size"]),
                                     seed=seed, photos=photos)  # fmt: skip
        model, _, info = arcface_model_with_weights(build)
        return model, info
    raise SpecError(f"--reference torch rebuilds SCRFD and ArcFace artifacts, not {target.family} models; use --reference FILE")


def compare_with_torch(
    target: VerifyTarget, run_path: Path, frames: np.ndarray, request: ReferenceRequest, batch_sizes: Sequence[int], photos: Sequence[Path]
) -> ReferenceResult:
    from facebatch.exporter.export_job import seeded_parity_gate
    from facebatch.verify.torch_parity import torch_vs_onnx

    with step("rebuild the torch model this file was exported from"):
        model, weights = torch_reference(target, request, photos)
    source = f"seeded weights, seed {weights.seed}" if weights.kind == "seeded" else f"{weights.kind} {Path(weights.path or '').name}"
    result = ReferenceResult(f"torch {target.spec.name} ({source})")
    atol = None
    if weights.kind == "seeded":
        atol = seeded_parity_gate(model, target.spec, frames, weights)
        result.notes.append(weights.parity_note or "")
    with step(f"parity torch vs this file at batch {', '.join(map(str, batch_sizes))}"):
        result.reports = torch_vs_onnx(model, run_path, target.spec, frames, batch_sizes, atol)
    return result


# ---- another ONNX file --------------------------------------------------------------------


def _reference_input(path: Path, input_size: tuple[int, int]) -> str:
    try:
        name, dims = graph_input(load_model(path), SpecError)
    except SpecError as exc:
        raise SpecError(f"reference {path.name}: {exc}") from exc
    if len(dims) != 4:
        raise SpecError(f"reference {path.name} input {name} has {len(dims)} dims, expected NCHW")
    if isinstance(dims[0], int) and dims[0] > 1:
        raise SpecError(f"reference {path.name} is fixed to batch {dims[0]}; it must take one frame")
    for label, have, want in zip(("height", "width"), dims[2:], input_size):
        if isinstance(have, int) and have > 0 and have != want:
            raise SpecError(f"reference {path.name} is fixed to {label} {have}; the model under test takes {want}")
    return name


def _named(raw: Sequence[np.ndarray], target: VerifyTarget, batch: int, source: str) -> dict[str, np.ndarray]:
    """Both sides in one vocabulary: SCRFD → score_8 … kps_32; an embedder → its spec name."""
    if target.family == "scrfd":
        assert target.layout is not None
        h, w = target.input_size
        return canonical_outputs(raw, target.layout, h, w, batch)
    if len(raw) != 1:
        raise SpecError(f"{source} has {len(raw)} outputs; an embedder has one")
    return {target.spec.outputs[0].name: raw[0]}


def _comparison_specs(target: VerifyTarget) -> list[TensorSpec]:
    """The spec's tolerances under the shared names. SCRFD specs of foreign files name their
    outputs as the graph does, so a shared name they lack takes the first output's tolerances
    (every SCRFD output has the same ones)."""
    specs = list(target.spec.outputs)
    if target.family != "scrfd":
        return specs
    assert target.layout is not None
    by_name = {s.name: s for s in specs}
    return [by_name.get(name) or replace(specs[0], name=name) for name in target.layout.output_names()]


def compare_with_file(
    target: VerifyTarget, run_path: Path, frames: np.ndarray, reference: Path, batch_sizes: Sequence[int]
) -> ReferenceResult:
    reference = Path(reference)
    ref_input = _reference_input(reference, target.input_size)
    count = max(batch_sizes)
    result = ReferenceResult(f"{reference.name} (run one frame at a time on the same preprocessed frames)")
    with OnnxRuntimeRunner(reference) as ref_runner, step(f"run the reference {reference.name} on {count} frames, one at a time"):
        singles = [_named(ref_runner.session.run(None, {ref_input: frames[i : i + 1]}), target, 1, reference.name) for i in range(count)]
    expected = {name: np.concatenate([s[name] for s in singles]) for name in singles[0]}
    specs = _comparison_specs(target)
    with OnnxRuntimeRunner(run_path) as runner, step(f"parity vs {reference.name} at batch {', '.join(map(str, batch_sizes))}"):
        for n in batch_sizes:
            raw = runner.session.run(None, {target.spec.input.name: np.ascontiguousarray(frames[:n])})
            actual = _named(raw, target, n, target.path.name)
            result.reports.append(compare_outputs(f"batch {n}", actual, _first(expected, n), specs))
    return result


def _first(arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {name: array[:n] for name, array in arrays.items()}


def compare_with_reference(
    target: VerifyTarget,
    run_path: Path,
    frames: np.ndarray,
    request: ReferenceRequest,
    batch_sizes: Sequence[int],
    photos: Sequence[Path] = (),
) -> ReferenceResult:
    sizes = parity_batch_sizes(batch_sizes)
    if request.is_torch:
        return compare_with_torch(target, run_path, frames, request, sizes, photos)
    if request.weights is not None or request.config is not None:
        raise SpecError("--reference-weights and --reference-config belong to --reference torch")
    return compare_with_file(target, run_path, frames, Path(request.source), sizes)
