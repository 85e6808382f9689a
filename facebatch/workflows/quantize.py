"""``facebatch quantize``: an FP32 artifact → its INT8 ONNX for the CPU, proven still right.

1. Calibration frames from the photos: letterboxed for detectors; for embedders the faces a
   detector finds in them, aligned as the pipeline aligns them.
2. onnxruntime's static quantisation (engines/build/int8.py), the batch axis kept symbolic: each recipe
   suited to this CPU class is tried and the most accurate kept (``quantize_search``).
3. The accuracy gate, against the FP32 source on the same photos (``quantize_gate``), then verify --strict
   against the source at the INT8 spec's tolerances.
4. The speed-up, measured by bench in the same run: FP32 and INT8 on onnxruntime CPU and
   OpenVINO, side by side.

A model that fails the gate is not written unless ``force``; the report (``QuantizeResult``) says why
either way. The INT8 file is written atomically, its sidecar JSON (calibration, gate, speed-ups) after it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.configs.license import license_of
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.precision import Precision
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.atomic import check_output_file
from facebatch.core.environment import int8_cpu_class
from facebatch.core.errors import SpecError
from facebatch.core.progress import step, warn
from facebatch.core.publish import Draft, draft, publish
from facebatch.engines.bench.job import ModelBenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.build.int8 import calibration_hash
from facebatch.engines.build.int8_recipes import RECIPES, RECIPES_FOR_CPU, Int8Recipe
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.pipeline.preprocess import proof_frames
from facebatch.engines.runners.backends import parse_backends
from facebatch.engines.runners.factory import RunnerOptions
from facebatch.exporter.backends import make_runner
from facebatch.verify.reference import onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.convert import source_record
from facebatch.workflows.defaults import (
    QUANTIZE_BENCH_BACKENDS,
    QUANTIZE_BENCH_BATCH_SIZES,
    QUANTIZE_BENCH_SECONDS,
    QUANTIZE_BENCH_WARMUP_S,
)
from facebatch.workflows.quantize_gate import EMBEDDER_MAX_DROP, Evidence, fp32_evidence
from facebatch.workflows.quantize_report import QuantizeResult
from facebatch.workflows.quantize_search import RecipeSearch, SearchOutcome

INT8_SUFFIX = "_int8"
MAX_CALIBRATION_FACES = 256
VERIFY_BATCH_SIZES = (
    1,
    2,
    8,
)  # batch independence needs one of 2 or more; the largest grows to hold every photo (≤ 32)


@dataclass
class QuantizeOptions:
    photos: Sequence[Path]
    per_channel: bool = True
    recipes: Sequence[str] = ()  # the recipes to try (engines.build.int8.RECIPES); () tries this CPU class's candidates
    max_drop: float | None = None  # None: DETECTOR_MAX_DROP / UNLABELLED_MAX_MISSED / EMBEDDER_MAX_DROP
    force: bool = False
    detector: Path | None = None  # embedders: finds the faces to align (default: the first real detector in build/onnx)
    bench: bool = True
    bench_backends: Sequence[str] = QUANTIZE_BENCH_BACKENDS
    bench_batch_sizes: Sequence[int] = QUANTIZE_BENCH_BATCH_SIZES
    budget: Budget = field(
        default_factory=lambda: Budget(warmup=QUANTIZE_BENCH_WARMUP_S, seconds=QUANTIZE_BENCH_SECONDS)
    )
    threads: int | None = None
    mixed: bool = False  # embedders no recipe passes: search the layers that can run in INT8 (int8_mixed)

    def __post_init__(self) -> None:
        if not self.photos:
            raise SpecError("photos: INT8 calibration needs a photo or a folder of them", field="photos")
        self.photos = proof_photos(self.photos)  # photos or folders of them, as every command takes them
        if self.threads is not None and self.threads < 1:  # before the slow work, not at its bench
            raise SpecError(f"threads must be at least 1, got {self.threads}", field="threads")
        if self.max_drop is not None and not 0.0 <= self.max_drop < 1.0:
            raise SpecError(f"max_drop must be in [0, 1), got {self.max_drop}", field="max_drop")
        unknown = [r for r in self.recipes if r not in RECIPES]
        if unknown:
            raise SpecError(f"recipes: {unknown[0]} is unknown; known: {', '.join(RECIPES)}", field="recipes")
        # names, or one comma-separated string of them as the command line gives them
        self.bench_backends = parse_backends(self.bench_backends, "bench_backends")

    def candidates(self, cpu_class: str) -> list[Int8Recipe]:
        return [RECIPES[name] for name in (self.recipes or RECIPES_FOR_CPU[cpu_class])]


def default_int8_path(source: Path) -> Path:
    return source.with_name(f"{source.stem.removesuffix('_fp32')}{INT8_SUFFIX}.onnx")


def quantize_int8(source: Path, options: QuantizeOptions, out: Path | None = None) -> QuantizeResult:
    """The use case: the INT8 model of ``source``, calibrated and judged on ``options.photos``, written to ``out``
    (default beside it) only where its accuracy gate and verify pass, or ``options.force``; ``result.refusal()``
    is the error when nothing was written."""
    began = time.perf_counter()
    source = Path(source)
    target = _fp32_source(source)
    out = Path(out) if out is not None else default_int8_path(source)
    if out.suffix != ".onnx" or out.resolve() == source.resolve():
        raise SpecError(
            f"out must name a new .onnx file, not {out} (quantize never overwrites its source)", field="out"
        )
    check_output_file(out, "out", inputs=[source])
    photos = list(options.photos)
    with step(f"calibration frames from {len(photos)} photos"):
        evidence = fp32_evidence(target, photos, options.detector)
        calibration = _calibration_frames(target, evidence)
    accepted = 1.0 - (EMBEDDER_MAX_DROP if options.max_drop is None else options.max_drop)
    cpu_class = int8_cpu_class()
    with draft(out, "out", inputs=[source]) as candidate:
        search = RecipeSearch(
            source=target,
            calibration=calibration,
            calibration_sha256=calibration_hash([p.name for p in photos], calibration),
            evidence=evidence,
            folder=candidate.folder,
            name=out.name,
            cpu_class=cpu_class,
            per_channel=options.per_channel,
            max_drop=options.max_drop,
            accepted=accepted if target.spec.family.is_embedder else None,
        )
        result = _judged(search, search.run(options.candidates(cpu_class), options.mixed), out, options)
        if options.bench:
            result.bench = _bench(target, search.best.path, photos, options)
        if result.passed or options.force:
            _publish(candidate, search.best.path, result, target)
    result.seconds = time.perf_counter() - began
    return result


def _fp32_source(source: Path) -> ModelFile:
    target = read_model_file(source)
    if target.spec.precision is not Precision.FP32:
        raise SpecError(f"{source.name} is {target.spec.precision.value}; quantise its FP32 artifact")
    if target.seeded:
        warn(
            f"{source.name} has seeded weights: its accuracy report says nothing about a trained model (speed still does)"
        )
    return target


def _calibration_frames(target: ModelFile, evidence: Evidence) -> np.ndarray:
    """Embedders: up to ``MAX_CALIBRATION_FACES`` of the aligned faces, spread evenly; detectors: the photos, letterboxed."""
    if evidence.frames is not None:
        frames = evidence.frames
        return frames[np.linspace(0, len(frames) - 1, min(len(frames), MAX_CALIBRATION_FACES)).astype(int)]
    h, w = target.spec.input_size
    return proof_frames(len(evidence.photos), h, w, target.spec.normalize, evidence.photos)


def _judged(search: RecipeSearch, outcome: SearchOutcome, out: Path, options: QuantizeOptions) -> QuantizeResult:
    """The kept candidate, verified against its source, as the result (not yet written)."""
    best = outcome.best
    report = _verify(best.path, search.source.path, search.evidence.photos)
    failures = list(best.judgement.failures)
    if not report.passed:
        failures.append(f"verify against {search.source.path.name}: {report.failure_line()}")
    result = QuantizeResult(
        search.source.path,
        out,
        best.quantization,
        search.calibration_sha256,
        best.judgement.accuracy,
        failures,
        best.judgement.limits,
        verify=report,
        tried=[c.record() for c in outcome.tried],
        mixed_searched=options.mixed,
    )
    if len(outcome.tried) > 1:
        result.notes.append(
            f"tried {', '.join(c.recipe.name for c in outcome.tried)} (the candidates for {search.cpu_class} CPUs"
            f"{', then a mixed search' if outcome.mixed_note else ''}); kept {best.recipe.name}, "
            + ("the most accurate" if not outcome.mixed_note else "passing the gate first, then the most accurate")
        )
    if outcome.mixed_note:
        result.notes.append(outcome.mixed_note)
    return result


def _verify(path: Path, source: Path, photos: Sequence[Path]) -> VerifyReport:
    """The proof convert gives FP16 files: verify --strict against the source, at the INT8 spec's tolerances,
    every photo judged (as a release check does)."""
    batches = (*VERIFY_BATCH_SIZES[:-1], min(32, max(VERIFY_BATCH_SIZES[-1], len(photos))))
    return verify_model(
        path, VerifyOptions(batch_sizes=batches, photos=photos, reference=onnx_reference(source), strict=True)
    )


def _bench(target: ModelFile, int8: Path, photos: Sequence[Path], options: QuantizeOptions) -> BenchReport:
    bench_options = ModelBenchOptions(
        backends=options.bench_backends,
        batch_sizes=options.bench_batch_sizes,
        budget=options.budget,
        photos=photos,
        runner=RunnerOptions(threads=options.threads),
    )
    return bench_models([target, read_model_file(int8)], bench_options, make_runner)


def _publish(candidate: Draft, kept: Path, result: QuantizeResult, target: ModelFile) -> None:
    """The kept candidate renamed into place with its sidecar (the gate's verdict as its proof)."""
    if result.path.exists():
        result.notes.append(f"replaced the existing {result.path}")
    if not result.passed:
        result.notes.append("the gate failed and it was written anyway (forced)")
    kept.replace(candidate.path)
    assert result.verify is not None
    publish(
        candidate,
        "facebatch quantize",
        _int8_record(result, target.recorded_weights) | {"license": license_of(target).to_dict()},
        source=source_record(target),
        proof={
            "passed": result.passed,
            "forced": not result.passed,
            "failures": result.failures,
            "limits": result.limits,
            "accuracy": result.accuracy.to_dict(),
            "verify": result.verify.proof_record(),
        },
    )
    result.written = True


def _int8_record(result: QuantizeResult, weights: dict[str, Any]) -> dict[str, Any]:
    """The quantisation's own sidecar fields (``facebatch.core.publish`` writes the header)."""
    return {
        "precision": Precision.INT8.value,
        "quantization": {
            "description": result.quantization.describe(),
            "per_channel": result.quantization.per_channel,
            "recipe": result.quantization.recipe.name,
            "cpu_class": result.quantization.cpu_class,
            "recipes_tried": result.tried,
            "quantized_nodes": result.quantization.quantized_nodes,
            "calibration_frames": result.quantization.calibration_frames,
            "calibration_sha256": result.calibration_sha256,
        },
        "speedups": result.speedups(),
        "spec": spec_to_dict(result.quantization.spec),
        "weights": weights,  # the source's weights record
    }
