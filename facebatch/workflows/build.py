"""``facebatch build``: a TensorRT engine with one batch profile (1/16/32 from the spec),
compared with the FP32 ONNX before it is written.

TensorRT 10 parses the FP32 artifact and may pick FP16 kernels (the FP16 flag); TensorRT
≥ 11 parses the verified FP16 artifact as a strongly typed network, made here by
``convert_fp16`` when it is not already beside the FP32 one. The built plan is loaded from
a temp file, run at batch 1, the profile's opt and max against the FP32 ONNX on
onnxruntime (the precision's tolerances; decoded faces for trained detectors) and checked
for batch independence at the precision's tolerance. Only then are the plan and its
sidecar renamed into place: a disagreeing engine leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.precision import Precision, independence_atol
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError, VerificationFailed
from facebatch.core.progress import step
from facebatch.core.publish import draft, publish, sidecar_path
from facebatch.engines.build.tensorrt_engine import BuilderOptions, build_engine
from facebatch.engines.pipeline.defaults import DEFAULT_FRAME_SEED
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.availability import detect_runtimes
from facebatch.engines.runners.engine_record import (
    DEFAULT_ENGINE_DIR,
    EngineProfile,
    EngineRecord,
    build_recipe,
    engine_filename,
    engine_profile,
)
from facebatch.engines.runners.tensorrt_runner import (
    TENSORRT_HINT,
    TensorRtRunner,
    current_gpu,
    import_tensorrt,
)
from facebatch.verify.independence import verify_batch_independence
from facebatch.verify.reference import OnnxFileReference, compare_with_reference
from facebatch.workflows.convert import ConvertOptions, convert_fp16, default_fp16_path


def no_tensorrt(problem: str) -> str:
    """Why no engine can be built here, and what can be made instead."""
    return (
        f"{problem} ({TENSORRT_HINT}); converting the model to FP16 makes the verified FP16 ONNX on any machine, "
        "for TensorRT elsewhere or onnxruntime's CUDA and TensorRT providers"
    )


@dataclass
class BuildOptions:
    precision: Precision = Precision.FP16
    size: tuple[int, int] | None = None  # required for --dynamic-size artifacts
    batch_min: int | None = None
    batch_opt: int | None = None
    batch_max: int | None = None
    settings: BuilderOptions = field(default_factory=BuilderOptions)
    out: Path | None = None  # the plan's path; None: engine_filename inside out_dir
    out_dir: Path = DEFAULT_ENGINE_DIR  # where the plan goes when out is None (a release: its engines/ beside onnx/)
    photos: Sequence[Path] = ()
    seed: int = DEFAULT_FRAME_SEED

    def __post_init__(self) -> None:
        self.photos = proof_photos(self.photos)  # photos or folders of them, as every command takes them
        self.check()

    def check(self) -> None:
        """What the options alone can refuse, before the model is read."""
        if self.out is not None and Path(self.out).suffix != ".plan":
            raise SpecError(f"out must name a .plan file, not {self.out}", field="out")
        named = str(getattr(self.precision, "value", self.precision))  # a Precision, or "fp16"/"fp32" as text
        if named not in ("fp16", "fp32"):  # INT8: TensorRT's calibrator
            raise SpecError(
                f"precision {named!r}: engines are built in fp16 or fp32 "
                "(the CPU INT8 model comes from quantising the FP32 ONNX)",
                field="precision",
            )
        self.precision = Precision(named)
        for name in ("batch_min", "batch_opt", "batch_max"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise SpecError(f"{name} must be a whole number of at least 1, got {value!r}", field=name)


@dataclass
class BuildResult:
    """A built engine: where it was written, its record (the sidecar: recipe, profile, GPU, the comparison with
    the FP32 ONNX), and what was made on the way (``notes``)."""

    path: Path
    record: EngineRecord
    notes: list[str] = field(default_factory=list)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def lines(self) -> list[str]:
        """The build and its proof, a line each."""
        record = self.record
        return (
            [f"note: {note}" for note in self.notes]
            + [f"vs {record.reference_onnx['file']}: {line}" for line in record.verification.get("summary", [])]
            + [
                f"TensorRT {record.tensorrt_version} on {record.gpu.name} (compute capability "
                f"{record.gpu.compute_capability}), {record.recipe.describe()}, built in {record.build_seconds:.1f} s",
                f"wrote {self.path} and {self.sidecar.name}",
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "notes": self.notes, "record": self.record.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        return "\n".join([f"# build: {self.path.name}", "", *(f"- {line}" for line in self.lines())]) + "\n"


EngineResult = BuildResult  # alias for one release


def engine_path(fp32: ModelFile, profile: EngineProfile, options: BuildOptions) -> Path:
    """Where the plan goes: ``--out``, else ``<stem>_<precision>_b<min>-<max>.plan`` in ``out_dir``, the
    name the ``trt`` backend looks for (``find_engine``: engines/ beside the ONNX's folder)."""
    return options.out or Path(options.out_dir) / engine_filename(fp32.path.stem, options.precision, profile.batch)


def fp32_source(target: ModelFile) -> ModelFile:
    """The FP32 artifact an engine is compared with: the file itself, or the source an FP16
    artifact records (beside it, with the recorded sha256)."""
    if target.spec.precision is Precision.FP32:
        return target
    return read_model_file(target.source_file())


def _fp16_artifact(fp32: ModelFile, photos: Sequence[Path], seed: int, notes: list[str]) -> Path:
    """The verified FP16 conversion of ``fp32``: the one beside it when it descends from
    exactly this file, else made now by ``convert_fp16``."""
    path = default_fp16_path(fp32.path)
    if path.is_file():
        existing = read_model_file(path)
        if existing.props.get("source_sha256") == fp32.sha256:
            return path
    result = convert_fp16(fp32.path, path, ConvertOptions(photos=photos, seed=seed))
    if not result.written:
        raise VerificationFailed(
            f"the FP16 ONNX TensorRT would build from fails its gate: {result.report.failure_line()}"
        )
    notes.append(f"made the FP16 ONNX {path.name} (TensorRT ≥ 11 builds strongly typed networks from it)")
    return path


def build_engine_job(model_path: Path, options: BuildOptions) -> BuildResult:
    """The use case. The options, the model and the profile are checked first, so bad input is named even
    where TensorRT is missing; then the build, the comparison and the writes."""
    options.check()
    fp32 = fp32_source(read_model_file(Path(model_path)))
    profile = engine_profile(fp32.spec, options.size, options.batch_min, options.batch_opt, options.batch_max)
    problem = detect_runtimes().tensorrt_problem()
    if problem:
        raise SpecError(no_tensorrt(problem))
    trt = import_tensorrt()
    recipe = build_recipe(trt.__version__, options.precision)
    notes: list[str] = []
    parsed = (
        fp32.path
        if recipe.onnx_precision is Precision.FP32
        else _fp16_artifact(fp32, options.photos, options.seed, notes)
    )
    out = engine_path(fp32, profile, options)
    spec = fp32.spec.at_fp16(fp32.seeded) if options.precision is Precision.FP16 else fp32.spec
    with step(
        f"build a TensorRT {options.precision.value} engine from {parsed.name} ({recipe.describe()}), batch "
        f"{profile.batch.min}/{profile.batch.opt}/{profile.batch.max}"
    ):
        built = build_engine(parsed, recipe, profile, options.settings)
    record = EngineRecord(
        engine=out.name,
        sha256="",
        precision=options.precision,
        tensorrt_version=built.tensorrt_version,
        gpu=current_gpu(),
        profile=profile,
        recipe=recipe,
        spec=spec,
        source_onnx={"file": parsed.name, "sha256": file_sha256(parsed)},
        reference_onnx={"file": fp32.path.name, "sha256": fp32.sha256},
        builder=options.settings.to_dict(),
        build_seconds=round(built.seconds, 2),
    )
    with draft(out, "out", inputs=[fp32.path, parsed]) as candidate:
        candidate.path.write_bytes(built.data)
        record.sha256 = file_sha256(candidate.path)
        record.verification = _check_engine(candidate.path, record, fp32, options)
        if not record.verification["passed"]:
            raise VerificationFailed(
                f"the {out.name} engine disagrees with {fp32.path.name}: {record.verification['failures'][0]}; "
                "nothing was written"
            )
        published = publish(
            candidate, "facebatch build", record.sidecar_body(), source=record.reference_onnx, proof=record.verification
        )
    record.created = published.record["created"]
    return BuildResult(out, record, notes)


def _check_engine(plan: Path, record: EngineRecord, fp32: ModelFile, options: BuildOptions) -> dict:
    """The engine against the FP32 ONNX at batch min, opt and max (check 4's comparison, at
    the engine's tolerances), and frame by frame."""
    batch = record.profile.batch
    batches = sorted({batch.min, batch.opt, batch.max})
    frames = model_frames(fp32, record.profile.size, batch.max, options.photos, options.seed)
    at_engine_precision = replace(fp32, spec=record.spec)
    with TensorRtRunner(plan, record) as engine:
        with step(f"compare the engine with {fp32.path.name} on onnxruntime at batch {', '.join(map(str, batches))}"):
            result = compare_with_reference(
                at_engine_precision,
                engine,
                frames,
                OnnxFileReference(fp32.path, fp32.model),
                batches,
                record.profile.size,
            )
        independence = verify_batch_independence(
            engine, frames, sorted({1, 2, *batches}), independence_atol(record.precision)
        )
    failures = [r.summary() for r in result.reports if not r.passed] + [
        d.summary() for d in result.decoded if not d.passed
    ]
    if not independence.passed:
        worst = independence.worst()
        failures.append(
            independence.error
            or f"frames inside a batch differ from their single runs by up to {worst.max_abs_diff:.3g} "
            f"(limit {independence.atol:g})"
        )
    return {
        "passed": not failures,
        "failures": failures,
        "batch_sizes": batches,
        "notes": result.notes,
        "parity_vs_fp32_onnx": [r.to_dict() for r in result.reports],
        "decoded": [d.to_dict() for d in result.decoded],
        "independence": independence.to_dict(),
        "summary": [r.summary() for r in result.reports] + [d.summary() for d in result.decoded],
    }
