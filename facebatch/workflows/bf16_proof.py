"""``facebatch prove-bf16``: does a model still give the same answers computing in bfloat16 on OpenVINO?

The model runs on OpenVINO twice on the same photos, in FP32 and with ``INFERENCE_PRECISION_HINT`` bf16, and is
judged by what users see (``facebatch.workflows.bf16_record.bf16_failures``): detectors by their decoded faces
(every FP32 face matched at IoU ≥ 0.95, landmarks within the bound, no hand-labelled face lost), embedders by the
cosine of every aligned face to its FP32 embedding (≥ 0.999) and the ordering of same- and different-person pairs
(quantize's ``Evidence``: the FP32 side is the reference). BF16 needs no calibration: the weights stay FP32 and the
CPU rounds as it computes, so the verdict belongs to the file (sha256) and the CPU's bf16 class, and is written,
pass or fail, to ``MODEL.bf16.json`` beside the model, which ``--precision bf16`` reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.core.errors import SpecError, VerificationFailed
from facebatch.core.progress import step
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineOptions
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.pipeline.preprocess import blob_from_images
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.engines.runners.openvino_runner import OpenVinoCpu, detect_openvino_cpu
from facebatch.verify.accuracy import detector_accuracy, embedder_accuracy
from facebatch.workflows.bf16_record import LIMITS, bf16_failures, bf16_record_path, check_ours, write_record
from facebatch.workflows.quantize_gate import Accuracy, Evidence, aligned_faces

T = TypeVar("T")


@dataclass
class Bf16ProofOptions:
    photos: Sequence[Path] = ()  # photos (or folders) that show faces: what both precisions are judged on
    detector: Path | None = None  # embedders: the detector that finds the faces (default: build/onnx's)
    size: tuple[int, int] | None = None  # detectors with a symbolic input size
    embedder: EmbedderDescription | None = None  # foreign embedders
    threads: int | None = None  # OpenVINO's threads; None: the physical cores
    openvino: OpenVinoCpu | None = None  # what OpenVINO says of the CPU; None: read from this one

    def __post_init__(self) -> None:
        if not self.photos:
            raise SpecError("a BF16 proof compares the faces on photos: pass photos that show faces", field="photos")
        self.photos = proof_photos(self.photos)


@dataclass
class Bf16ProofResult:
    model: Path
    sha256: str
    embedder: bool
    size: tuple[int, int]  # the input size it was proven at (a detector's error grows with it)
    accuracy: Accuracy
    failures: list[str]
    cpu: OpenVinoCpu
    record: Path  # where the verdict was written
    seconds: dict[str, float] = field(default_factory=dict)  # fp32 / bf16: the time each run took

    @property
    def passed(self) -> bool:
        return not self.failures

    def refusal(self) -> VerificationFailed | None:
        """The error the command exits with when the proof failed (its verdict is recorded all the same)."""
        if self.passed:
            return None
        return VerificationFailed(f"{self.model.name} fails in BF16: {'; '.join(self.failures)}")

    def lines(self) -> list[str]:
        verdict = "passed" if self.passed else "FAILED"
        times = ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())
        return [
            f"BF16 on OpenVINO {self.cpu.version}, {self.cpu.name} ({self.cpu.bf16_class}): {verdict}",
            *self.accuracy.lines(),
            *([f"runs: {times}"] if times else []),
            *[f"failure: {f}" for f in self.failures],
            f"wrote {self.record}",
        ]

    def to_record(self) -> dict[str, Any]:
        """What ``MODEL.bf16.json`` holds (``bf16_record.write_record`` adds who wrote it and the digest)."""
        return {
            "model": self.model.name,
            "sha256": self.sha256,
            "embedder": self.embedder,
            "size": list(self.size),
            "passed": self.passed,
            "failures": self.failures,
            "figures": self.accuracy.to_dict(),
            "limits": LIMITS,
            "photos": len(getattr(self.accuracy, "cosines", None) or []) or getattr(self.accuracy, "photos", 0),
            "cpu": self.cpu.to_dict(),
            "openvino": self.cpu.version,
            "seconds": self.seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.model), "record": str(self.record), **self.to_record()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        return f"# BF16 proof: {self.model.name}\n\n" + "\n".join(f"- {line}" for line in self.lines()) + "\n"


def check_bf16_candidate(model: ModelFile, cpu: OpenVinoCpu) -> None:
    """Refuse, before any work, a CPU without BF16 (or without OpenVINO) and a file that is not FP32."""
    problem = cpu.bf16_problem()
    if problem is not None:
        raise SpecError(f"{model.path.name} cannot be proven in BF16 here: {problem}", field="model")
    if model.precision != "fp32":
        raise SpecError(
            f"{model.path.name} is {model.precision}; BF16 is proven for FP32 files (pass its FP32 source)",
            field="model",
        )


def _runner_options(options: Bf16ProofOptions, bf16: bool) -> RunnerOptions:
    # compiled anew: the proof is what decides whether a cached BF16 blob may ever be used
    return RunnerOptions(threads=options.threads, spin_wait=False, compile_cache=False, bf16=bf16)


def _detect(model: ModelFile, options: Bf16ProofOptions, photos: list[Path], bf16: bool) -> list:
    settings = PipelineOptions(read_workers=0, lanes=1)
    runners = _runner_options(options, bf16)
    with open_pipeline(model, None, "openvino", settings, runners, options.size) as pipeline:
        return list(pipeline.run(photos))


def _embed(model: ModelFile, options: Bf16ProofOptions, frames: np.ndarray, bf16: bool) -> np.ndarray:
    spec = model.spec
    runners = _runner_options(options, bf16)
    with make_onnx_runner("openvino", model, spec.input_size, runners) as runner:
        rows = [
            next(iter(runner.infer({spec.input.name: frames[i : i + 8]}).values())) for i in range(0, len(frames), 8)
        ]
    return np.concatenate(rows).reshape(len(frames), -1)


def _timed(label: str, seconds: dict[str, float], key: str, work: Callable[[], T]) -> T:
    with step(label):
        start = time.perf_counter()
        done = work()
    seconds[key] = time.perf_counter() - start
    return done


def _judged(model: ModelFile, options: Bf16ProofOptions, seconds: dict[str, float]) -> Accuracy:
    """FP32 on OpenVINO as the evidence, then BF16 against it."""
    photos = list(options.photos)
    if model.spec.family.is_embedder:
        faces = aligned_faces(model, options.detector, photos)
        frames = blob_from_images(faces.crops, model.spec.normalize)
        fp32 = _timed(
            "embed the faces in FP32 on OpenVINO", seconds, "fp32", lambda: _embed(model, options, frames, False)
        )
        evidence = Evidence(photos, fp32, faces, frames)
        bf16 = _timed(
            "embed the faces in BF16 on OpenVINO", seconds, "bf16", lambda: _embed(model, options, frames, True)
        )
        pairs = {name: (fp32[row], bf16[row]) for name, row in faces.best.items()}
        return embedder_accuracy(fp32, bf16, pairs)
    found = _timed("detect in FP32 on OpenVINO", seconds, "fp32", lambda: _detect(model, options, photos, False))
    evidence = Evidence(photos, found)
    bf16_faces = _timed("detect in BF16 on OpenVINO", seconds, "bf16", lambda: _detect(model, options, photos, True))
    return detector_accuracy(found, bf16_faces, evidence.photos)


def prove_bf16(model: Path, options: Bf16ProofOptions) -> Bf16ProofResult:
    """Run ``model`` in FP32 and BF16 on OpenVINO over the photos, judge BF16 against FP32 and record the
    verdict beside the model (pass or fail; a failing result's ``refusal()`` is the error to exit with)."""
    model = Path(model)
    target = read_model_file(model, options.embedder, options.size)
    cpu = options.openvino or detect_openvino_cpu()
    check_bf16_candidate(target, cpu)
    record = bf16_record_path(model)
    check_ours(record)
    seconds: dict[str, float] = {}
    accuracy = _judged(target, options, seconds)
    embedder = target.spec.family.is_embedder
    failures = bf16_failures(embedder, accuracy.to_dict())
    result = Bf16ProofResult(
        model, target.sha256, embedder, target.spec.input_size, accuracy, failures, cpu, record, seconds
    )
    write_record(record, result.to_record())
    return result
