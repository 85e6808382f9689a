"""``facebatch quantize``: an FP32 artifact → its INT8 ONNX for the CPU, proven still right.

1. Calibration frames from the photos: letterboxed for detectors; for embedders the faces a
   detector finds in them, aligned as the pipeline aligns them.
2. onnxruntime's static quantisation (engines/build/int8.py), the batch axis kept symbolic.
3. The accuracy gate, against the FP32 source on the same photos (verify/accuracy.py):
   detectors — recall on hand-labelled faces may drop by at most ``max_drop`` (default 0: it
   must not drop), or, without labels, the share of FP32's faces the INT8 model misses;
   embedders — every face's cosine to its FP32 embedding ≥ 1 − ``max_drop`` (default 0.99),
   and the same-person pairs still above every different-person pair when they were.
4. The speed-up, measured by bench in the same run: FP32 and INT8 on onnxruntime CPU and
   OpenVINO, side by side.

A model that fails the gate is not written unless ``force``; the report says why either way.
The INT8 file is written atomically, its sidecar JSON (calibration, gate, speed-ups) after it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from facebatch.configs.model_file import ModelFile, default_artifact, read_model_file
from facebatch.configs.precision import INT8_MIN_COSINE, Precision
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.atomic import check_output_file
from facebatch.core.environment import environment, int8_cpu_class
from facebatch.core.errors import SpecError
from facebatch.core.progress import step, warn
from facebatch.core.publish import draft, publish, sidecar_path
from facebatch.engines.bench.flops import node_flops
from facebatch.engines.bench.job import BenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.build.int8 import Int8Quantization, calibration_hash, quantize_to_int8, stamp_int8
from facebatch.engines.build.int8_mixed import search_int8_nodes
from facebatch.engines.build.int8_recipes import RECIPES, RECIPES_FOR_CPU, Int8Recipe, mixed_recipe
from facebatch.engines.pipeline.face_pipeline import ImageFaces, PipelineSettings, open_pipeline
from facebatch.engines.pipeline.preprocess import blob_from_images, load_image, proof_frames
from facebatch.engines.runners.registry import RunnerOptions, onnx_runner
from facebatch.exporter.backends import make_runner
from facebatch.verify.accuracy import DetectorAccuracy, EmbedderAccuracy, detector_accuracy, embedder_accuracy
from facebatch.verify.reference import onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions, verify_model
from facebatch.workflows.convert import source_record
from facebatch.workflows.settings import (
    QUANTIZE_BENCH_BACKENDS,
    QUANTIZE_BENCH_BATCH_SIZES,
    QUANTIZE_BENCH_SECONDS,
    QUANTIZE_BENCH_WARMUP_S,
)

INT8_SUFFIX = "_int8"
DETECTOR_MAX_DROP = 0.0  # labelled recall may not drop
UNLABELLED_MAX_MISSED = 0.05  # without labels: the share of FP32's faces the INT8 model may miss
EMBEDDER_MAX_DROP = 1.0 - INT8_MIN_COSINE
MAX_CALIBRATION_FACES = 256
# A mixed search keeps a layer in INT8 only while the worst face keeps a fifth of the allowed drop unused
# (min cosine 0.992 for the gate's 0.99): the search and the gate see the same faces, and the margin
# keeps the choice from fitting them to the last digit.
MIXED_MARGIN = 0.8
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
            raise SpecError("INT8 calibration needs photos: pass --images with a photo or a folder of them")
        if self.max_drop is not None and not 0.0 <= self.max_drop < 1.0:
            raise SpecError(f"--max-drop must be in [0, 1), got {self.max_drop}")
        unknown = [r for r in self.recipes if r not in RECIPES]
        if unknown:
            raise SpecError(f"--recipe {unknown[0]}: unknown; known: {', '.join(RECIPES)}")

    def candidates(self, cpu_class: str) -> list[Int8Recipe]:
        return [RECIPES[name] for name in (self.recipes or RECIPES_FOR_CPU[cpu_class])]


@dataclass
class QuantizeResult:
    source: Path
    path: Path
    quantization: Int8Quantization
    calibration_sha256: str
    accuracy: DetectorAccuracy | EmbedderAccuracy
    failures: list[str]  # the gates that failed, in words
    limits: dict[str, float]
    written: bool = False
    tried: list[dict[str, Any]] = field(default_factory=list)  # every recipe tried: its accuracy and failures
    verify: VerifyReport | None = None
    bench: BenchReport | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def mixed_would_help(self, options: QuantizeOptions) -> bool:
        """A refused embedder that a mixed search (``QuantizeOptions.mixed``) has not been tried on."""
        return not self.passed and not options.mixed and isinstance(self.accuracy, EmbedderAccuracy)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def speedups(self) -> list[dict[str, Any]]:
        """INT8 FPS over FP32 FPS per backend and batch size (when bench ran)."""
        if self.bench is None:
            return []
        rows = []
        by_key = {(r.artifact, r.backend): r for r in self.bench.runs}
        for (artifact, backend), run in by_key.items():
            if artifact != self.path.name:
                continue
            fp32 = by_key.get((self.source.name, backend))
            if fp32 is None:
                continue
            for timing in run.timings:
                reference = fp32.timing(timing.batch)
                if reference is not None:
                    rows.append(
                        {
                            "backend": backend,
                            "batch": timing.batch,
                            "fp32_fps": reference.fps,
                            "int8_fps": timing.fps,
                            "speedup": timing.fps / reference.fps,
                        }
                    )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.path.name,
            "source": str(self.source),
            "written": self.written,
            "passed": self.passed,
            "failures": self.failures,
            "limits": self.limits,
            "quantization": self.quantization.describe(),
            "quantized_nodes": self.quantization.quantized_nodes,
            "calibration_sha256": self.calibration_sha256,
            "accuracy": self.accuracy.to_dict(),
            "recipes_tried": self.tried,
            "speedups": self.speedups(),
            "verify": {
                "passed": self.verify.passed,
                "checks": [{"check": c.label, "status": c.status, "summary": c.summary} for c in self.verify.checks],
            }
            if self.verify
            else None,
            "bench": self.bench.to_dict() if self.bench else None,
            "notes": self.notes,
            "seconds": self.seconds,
            "command": self.command,
            "environment": environment(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        verdict = (
            "PASS" if self.passed else ("FAIL (written with --force)" if self.written else "FAIL (nothing written)")
        )
        lines = [f"# facebatch quantize: {self.source.name} → {self.path.name}", ""]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        lines += [
            f"- gate: **{verdict}**",
            f"- {self.quantization.describe()}",
            f"- calibration sha256 {self.calibration_sha256[:16]}…",
            "",
            "## Accuracy against FP32 on the same photos",
            "",
        ]
        if len(self.tried) > 1:
            lines += [
                f"- recipe {t['recipe']}: {t['summary']}"
                + (" (kept)" if t["recipe"] == self.quantization.recipe.name else "")
                for t in self.tried
            ] + [""]
        lines += [f"- {line}" for line in self.accuracy.lines()]
        lines += [f"- limit: {name} {value:g}" for name, value in self.limits.items()]
        lines += [f"- **failed**: {failure}" for failure in self.failures]
        if self.verify is not None:
            lines += ["", "## verify --strict against the FP32 source (INT8 tolerances)", ""]
            lines += [f"- {c.label}: {c.status.upper()}: {c.summary}" for c in self.verify.checks]
        if isinstance(self.accuracy, DetectorAccuracy) and (self.accuracy.missed or self.accuracy.extra):
            lines += ["", "Faces only one of them finds:", ""]
            lines += [f"- missed by INT8: {m}" for m in self.accuracy.missed[:20]] + [
                f"- extra in INT8: {e}" for e in self.accuracy.extra[:20]
            ]
        speedups = self.speedups()
        if speedups:
            lines += [
                "",
                "## Speed (bench, same run)",
                "",
                "| backend | batch | FP32 FPS | INT8 FPS | INT8 / FP32 |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {r['backend']} | {r['batch']} | {r['fp32_fps']:.1f} | {r['int8_fps']:.1f} | {r['speedup']:.2f}× |"
                for r in speedups
            ]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def default_int8_path(source: Path) -> Path:
    return source.with_name(f"{source.stem.removesuffix('_fp32')}{INT8_SUFFIX}.onnx")


# -- calibration and evaluation data ---------------------------------------------------------------
@dataclass
class _Faces:
    """Embedders: the aligned faces of the photos, and which row is each photo's best face."""

    crops: np.ndarray  # [n, H, W, 3] BGR
    best: dict[str, int]  # photo name → row of its best face


def _aligned_faces(embedder: ModelFile, detector_path: Path | None, photos: Sequence[Path]) -> _Faces:
    detector = read_model_file(detector_path or default_artifact("detector"))
    crops, best = [], {}
    with open_pipeline(detector, embedder, settings=PipelineSettings(read_workers=0, lanes=1)) as pipeline:
        for photo in photos:
            prepared = pipeline.prepare(photo, load_image(photo))
            (result,) = pipeline.finish([prepared])
            if len(result):
                best[photo.name] = sum(len(c) for c in crops)
                crops.append(pipeline.align([prepared], [result.faces]))
    if not crops:
        raise SpecError(
            f"{detector.path.name} finds no face in the --images photos; an embedder is calibrated on faces"
        )
    return _Faces(np.concatenate(crops), best)


def _detect(model: ModelFile, photos: Sequence[Path]) -> list[ImageFaces]:
    with open_pipeline(model, None, settings=PipelineSettings(read_workers=0, lanes=1)) as pipeline:
        return list(pipeline.run(list(photos)))


def _embed(model: ModelFile, frames: np.ndarray) -> np.ndarray:
    spec = model.spec
    with onnx_runner("ort-cpu", model.path, spec, spec.input_size, RunnerOptions()) as runner:
        rows = [
            next(iter(runner.infer({spec.input.name: frames[i : i + 8]}).values())) for i in range(0, len(frames), 8)
        ]
    return np.concatenate(rows).reshape(len(frames), -1)


# -- the gate --------------------------------------------------------------------------------------
def _detector_gate(accuracy: DetectorAccuracy, max_drop: float | None) -> tuple[list[str], dict[str, float]]:
    if accuracy.labelled:
        limit = DETECTOR_MAX_DROP if max_drop is None else max_drop
        drop = (accuracy.recall_reference - accuracy.recall_candidate) / accuracy.labelled
        failures = (
            []
            if drop <= limit + 1e-12
            else [
                f"recall on hand-labelled faces fell from {accuracy.recall_reference} to {accuracy.recall_candidate} of "
                f"{accuracy.labelled} ({drop:.1%}, more than --max-drop {limit:g})"
            ]
        )
        return failures, {"labelled recall drop": limit}
    limit = UNLABELLED_MAX_MISSED if max_drop is None else max_drop
    missed = len(accuracy.missed) / max(1, accuracy.reference_faces)
    failures = (
        []
        if missed <= limit
        else [
            f"the INT8 model misses {len(accuracy.missed)} of the FP32 model's {accuracy.reference_faces} "
            f"faces ({missed:.1%}, more than --max-drop {limit:g})"
        ]
    )
    return failures, {"share of FP32 faces missed": limit}


def _embedder_gate(accuracy: EmbedderAccuracy, max_drop: float | None) -> tuple[list[str], dict[str, float]]:
    limit = EMBEDDER_MAX_DROP if max_drop is None else max_drop
    failures = []
    if accuracy.min_cosine < 1.0 - limit:
        worst = sum(c < 1.0 - limit for c in accuracy.cosines)
        failures.append(
            f"{worst} of {accuracy.faces} faces have a cosine to their FP32 embedding below {1.0 - limit:.4f} "
            f"(min {accuracy.min_cosine:.4f})"
        )
    if accuracy.ordering_reference and not accuracy.ordering_candidate:
        failures.append("a different-person pair now scores above a same-person pair (FP32 kept them apart)")
    return failures, {"min cosine": 1.0 - limit}


def _judge(
    candidate: ModelFile,
    reference: np.ndarray | list[ImageFaces],
    faces: _Faces | None,
    frames: np.ndarray | None,
    photos: Sequence[Path],
    max_drop: float | None,
) -> tuple[DetectorAccuracy | EmbedderAccuracy, list[str], dict[str, float]]:
    """The accuracy gate: ``candidate`` against the FP32 results ``reference`` on the same photos
    (embedders: on the aligned ``faces``, ``frames`` preprocessed)."""
    if faces is not None and frames is not None:
        assert isinstance(reference, np.ndarray)
        quantized = _embed(candidate, frames)
        pairs = {name: (reference[row], quantized[row]) for name, row in faces.best.items()}
        accuracy: DetectorAccuracy | EmbedderAccuracy = embedder_accuracy(reference, quantized, pairs)
        return accuracy, *_embedder_gate(accuracy, max_drop)
    accuracy = detector_accuracy(reference, _detect(candidate, photos), photos)  # type: ignore[arg-type]
    return accuracy, *_detector_gate(accuracy, max_drop)


def recheck_int8(
    path: Path, photos: Sequence[Path], detector: Path | None = None
) -> tuple[DetectorAccuracy | EmbedderAccuracy, list[str]]:
    """The accuracy gate of an INT8 file again, here, against the FP32 source it records (found beside
    it, sha256-checked): integer kernels differ between CPU classes, so a file gated on one is
    re-judged on another. Embedders need ``detector`` for the faces."""
    candidate = read_model_file(path)
    source = read_model_file(candidate.source_file())
    accepted = next((t.min_cosine for t in candidate.spec.outputs if t.min_cosine is not None), None)
    max_drop = None if accepted is None else 1.0 - accepted
    if source.spec.family.is_embedder:
        faces = _aligned_faces(source, detector, photos)
        frames = blob_from_images(faces.crops, source.spec.normalize)
        accuracy, failures, _ = _judge(candidate, _embed(source, frames), faces, frames, photos, max_drop)
    else:
        accuracy, failures, _ = _judge(candidate, _detect(source, photos), None, None, photos, None)
    return accuracy, failures


def _rank(accuracy: DetectorAccuracy | EmbedderAccuracy, failures: list[str]) -> tuple:
    """Which recipe's model is more accurate: passing the gate first; then embedders by their lowest
    cosine to FP32, detectors by labelled recall, fewest missed faces, then mean landmark error."""
    if isinstance(accuracy, EmbedderAccuracy):
        return (not failures, accuracy.min_cosine)
    errors = accuracy.landmark_errors_px
    return (
        not failures,
        accuracy.recall_candidate,
        -len(accuracy.missed),
        -(float(np.mean(errors)) if errors else 0.0),
    )


def _summary(accuracy: DetectorAccuracy | EmbedderAccuracy, failures: list[str]) -> str:
    if isinstance(accuracy, EmbedderAccuracy):
        text = f"min cosine {accuracy.min_cosine:.4f}"
    else:
        errors = accuracy.landmark_errors_px or [0.0]
        text = (
            f"recall {accuracy.recall_candidate}/{accuracy.labelled}, {len(accuracy.missed)} of {accuracy.reference_faces} missed, "
            f"landmarks max {max(errors):.2f} px, mean {np.mean(errors):.2f} px"
        )
    return text + ("; " + "; ".join(failures) if failures else "; passes")


def quantize_int8(source: Path, options: QuantizeOptions, out: Path | None = None) -> QuantizeResult:
    began = time.perf_counter()
    source = Path(source)
    target = read_model_file(source)
    if target.spec.precision is not Precision.FP32:
        raise SpecError(f"{source.name} is {target.spec.precision.value}; quantise its FP32 artifact")
    if target.seeded:
        warn(
            f"{source.name} has seeded weights: its accuracy report says nothing about a trained model (speed still does)"
        )
    out = Path(out) if out is not None else default_int8_path(source)
    if out.suffix != ".onnx" or out.resolve() == source.resolve():
        raise SpecError(f"-o {out}: name a new .onnx file (quantize never overwrites its source)")
    check_output_file(out, "-o", inputs=[source])
    photos = list(options.photos)
    spec = target.spec
    faces = None
    with step(f"calibration frames from {len(photos)} photos"):
        if spec.family.is_embedder:
            faces = _aligned_faces(target, options.detector, photos)
            frames = blob_from_images(faces.crops, spec.normalize)
            calibration = frames[np.linspace(0, len(frames) - 1, min(len(frames), MAX_CALIBRATION_FACES)).astype(int)]
        else:
            h, w = spec.input_size
            calibration = proof_frames(len(photos), h, w, spec.normalize, photos)
    calibration_sha = calibration_hash([p.name for p in photos], calibration)
    accepted = (
        1.0 - (EMBEDDER_MAX_DROP if options.max_drop is None else options.max_drop) if spec.family.is_embedder else None
    )
    cpu_class = int8_cpu_class()
    reference = _embed(target, frames) if faces is not None else _detect(target, photos)
    with draft(out, "-o", inputs=[source]) as candidate:
        best = None
        tried = []

        def attempt(recipe: Int8Recipe, int8_nodes: Sequence[str] = (), folder: str = "", quiet: bool = False) -> tuple:
            """One candidate: quantised the ``recipe`` way, saved under its final name, judged."""
            label = f"quantise {source.name} to INT8 ({recipe.name}, calibrated on {len(calibration)} frames)"
            with nullcontext() if quiet else step(label):
                quantization = quantize_to_int8(
                    source, spec, calibration, options.per_channel, accepted, recipe, cpu_class, int8_nodes
                )
            scratch = candidate.folder / (folder or recipe.name) / out.name  # its final name: bench and reports name it
            scratch.parent.mkdir(exist_ok=True)
            onnx.save(stamp_int8(quantization, target.props, source.name, target.sha256, calibration_sha), scratch)
            with nullcontext() if quiet else step(f"compare the INT8 model ({recipe.name}) with FP32 on the photos"):
                accuracy, failures, limits = _judge(
                    read_model_file(scratch), reference, faces, frames if faces else None, photos, options.max_drop
                )
            return quantization, scratch, accuracy, failures, limits

        def keep(found: tuple) -> None:
            nonlocal best
            quantization, _, accuracy, failures, _ = found
            tried.append(
                {
                    "recipe": quantization.recipe.name,
                    "description": quantization.recipe.describe(),
                    "passed": not failures,
                    "summary": _summary(accuracy, failures),
                    "accuracy": accuracy.to_dict(),
                }
            )
            if best is None or _rank(accuracy, failures) > _rank(best[2], best[3]):
                best = found

        for recipe in options.candidates(cpu_class):
            keep(attempt(recipe))
        assert best is not None  # every CPU class has candidates
        mixed_note = ""
        if best[3] and options.mixed and accepted is not None:
            recipe = mixed_recipe(best[0].recipe)

            def passes(int8_nodes: Sequence[str]) -> bool:
                _, _, accuracy, failures, _ = attempt(recipe, int8_nodes, folder="search", quiet=True)
                return not failures and accuracy.min_cosine >= 1.0 - MIXED_MARGIN * (1.0 - accepted)

            search = search_int8_nodes(node_flops(source, spec.input_size), passes)
            if search.int8_nodes:
                keep(attempt(recipe, search.int8_nodes))
                mixed_note = f"{recipe.name}: {search.describe()}"
            else:
                mixed_note = f"{recipe.name}: no layer can run in INT8 within the gate (searched {search.steps})"
        quantization, scratch, accuracy, failures, limits = best
        # the proof convert gives FP16 files: verify --strict against the source, at the INT8 spec's tolerances
        batches = (
            *VERIFY_BATCH_SIZES[:-1],
            min(32, max(VERIFY_BATCH_SIZES[-1], len(photos))),
        )  # every photo judged, as release --check does
        report = verify_model(
            scratch, VerifyOptions(batch_sizes=batches, photos=photos, reference=onnx_reference(source), strict=True)
        )
        if not report.passed:
            failures.append(f"verify against {source.name}: {report.failure_line()}")
        result = QuantizeResult(
            source, out, quantization, calibration_sha, accuracy, failures, limits, verify=report, tried=tried
        )
        if len(tried) > 1:
            result.notes.append(
                f"tried {', '.join(t['recipe'] for t in tried)} (the candidates for {cpu_class} CPUs"
                f"{', then a mixed search' if mixed_note else ''}); kept {quantization.recipe.name}, "
                + ("the most accurate" if not mixed_note else "passing the gate first, then the most accurate")
            )
        if mixed_note:
            result.notes.append(mixed_note)
        if options.bench:
            bench_options = BenchOptions(
                backends=options.bench_backends,
                batch_sizes=options.bench_batch_sizes,
                budget=options.budget,
                photos=photos,
                runner=RunnerOptions(threads=options.threads),
            )
            result.bench = bench_models([target, read_model_file(scratch)], bench_options, make_runner)
        if result.passed or options.force:
            if out.exists():
                result.notes.append(f"replaced the existing {out}")
            if not result.passed:
                result.notes.append("the gate failed and --force wrote it anyway")
            scratch.replace(candidate.path)
            publish(
                candidate,
                "facebatch quantize",
                _int8_record(result, target.recorded_weights),
                source=source_record(target),
                proof={
                    "passed": result.passed,
                    "forced": not result.passed,
                    "failures": result.failures,
                    "limits": result.limits,
                    "accuracy": result.accuracy.to_dict(),
                    "verify": report.proof_record(),
                },
            )
            result.written = True
    result.seconds = time.perf_counter() - began
    return result


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
