"""What a TensorRT engine is, without TensorRT: its optimisation profile, the recipe each
TensorRT major version builds it with, its file name, and the sidecar JSON that travels
beside the plan (a header inside the plan would stop trtexec and Triton from loading it).

Everything here is plain Python, tested on machines without a GPU; ``tensorrt_engine``
(the builder) and ``engines/runners/tensorrt_runner`` (the runner) are the thin parts that
call TensorRT.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from facebatch.configs.precision import Precision
from facebatch.configs.spec import ModelSpec, ShapeRange
from facebatch.configs.spec_io import spec_from_dict, spec_to_dict
from facebatch.core.errors import SpecError
from facebatch.core.publish import sidecar_path

ENGINE_FORMAT = 1
ENGINE_SUFFIX = ".plan"
DEFAULT_ENGINE_DIR = Path("build/engines")
STRONGLY_TYPED_FROM = 11  # TensorRT 11 builds strongly typed networks only: no FP16 builder flag


def tensorrt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise SpecError(f"cannot read TensorRT's version {version!r}") from None


@dataclass(frozen=True)
class BuildRecipe:
    """How one TensorRT version builds an engine of one precision."""

    onnx_precision: Precision  # the ONNX it parses: FP32 (TensorRT 10) or the verified FP16 one (≥ 11)
    strongly_typed: bool  # the network's types are the ONNX's own (TensorRT ≥ 11)
    fp16_flag: bool  # BuilderFlag.FP16: TensorRT 10 may pick FP16 kernels for an FP32 network

    def describe(self) -> str:
        how = "strongly typed network" if self.strongly_typed else "weakly typed network"
        flag = " with the FP16 builder flag" if self.fp16_flag else ""
        return f"{how} from the {self.onnx_precision.value.upper()} ONNX{flag}"


def build_recipe(tensorrt_version: str, precision: Precision) -> BuildRecipe:
    """TensorRT 10 builds FP16 engines from the FP32 ONNX with the FP16 flag; TensorRT ≥ 11
    has no such flag and builds the FP16 ONNX (``facebatch convert --fp16``) as typed."""
    major = tensorrt_major(tensorrt_version)
    if major < 10:
        raise SpecError(f"TensorRT {tensorrt_version} is too old: facebatch builds with TensorRT 10 or newer")
    strongly_typed = major >= STRONGLY_TYPED_FROM
    if precision is Precision.FP32:
        return BuildRecipe(Precision.FP32, strongly_typed, fp16_flag=False)
    if strongly_typed:
        return BuildRecipe(Precision.FP16, True, fp16_flag=False)
    return BuildRecipe(Precision.FP32, False, fp16_flag=True)


@dataclass(frozen=True)
class EngineProfile:
    """The one optimisation profile: the batch range at one input size, per input."""

    batch: ShapeRange
    size: tuple[int, int]
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]  # input → (min, opt, max)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": asdict(self.batch),
            "size": list(self.size),
            "shapes": {
                name: {"min": list(s[0]), "opt": list(s[1]), "max": list(s[2])} for name, s in self.shapes.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineProfile:
        shapes = {name: (tuple(s["min"]), tuple(s["opt"]), tuple(s["max"])) for name, s in data["shapes"].items()}
        return cls(ShapeRange(**data["batch"]), (int(data["size"][0]), int(data["size"][1])), shapes)


def engine_profile(
    spec: ModelSpec,
    size: tuple[int, int] | None = None,
    batch_min: int | None = None,
    batch_opt: int | None = None,
    batch_max: int | None = None,
) -> EngineProfile:
    """The spec's batch range (1/16/32) unless overridden, at the spec's size; an artifact
    exported with a dynamic size has no size of its own to build at, so it needs one."""
    if spec.dynamic_size and size is None:
        h, w = spec.input_size
        raise SpecError(
            f"{spec.name} has a symbolic input shape, and an engine is built for one: pass size, e.g. {h}x{w}",
            field="size",
        )
    if size is not None and not spec.dynamic_size and tuple(size) != tuple(spec.input_size):
        h, w = spec.input_size
        raise SpecError(f"{spec.name} runs at {h}x{w} only; drop size {size[0]}x{size[1]}", field="size")
    low, high = batch_min or spec.batch.min, batch_max or spec.batch.max
    opt = batch_opt or min(max(spec.batch.opt, low), high)  # follows a moved min or max
    if not low <= opt <= high:
        raise _profile_error(low, opt, high, batch_max is not None)
    batch = ShapeRange(low, opt, high)
    size = tuple(size) if size is not None else spec.input_size
    return EngineProfile(batch, size, replace(spec, batch=batch).batch_profile(size))


def _profile_error(low: int, opt: int, high: int, max_given: bool) -> SpecError:
    """A batch profile out of order, said of the bound to change: a max below the min (the given max, else
    the min), or a given opt outside them."""
    if low > high and max_given:
        return SpecError(f"batch_max {high} is below batch_min {low}", field="batch_max")
    if low > high:
        return SpecError(f"batch_min {low} is above the spec's largest batch, {high}", field="batch_min")
    return SpecError(f"batch_opt {opt} lies outside batch_min..batch_max ({low}..{high})", field="batch_opt")


def engine_filename(artifact_stem: str, precision: Precision, batch: ShapeRange) -> str:
    """``scrfd_10g_320_batch`` (or its ``_fp16`` conversion) → ``scrfd_10g_320_batch_fp16_b1-32.plan``."""
    stem = artifact_stem.removesuffix("_fp16").removesuffix("_fp32")
    return f"{stem}_{precision.value}_b{batch.min}-{batch.max}{ENGINE_SUFFIX}"


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"


@dataclass
class EngineRecord:
    """The sidecar JSON of a plan: what it is, where and how it was built, how it was checked."""

    engine: str
    sha256: str
    precision: Precision
    tensorrt_version: str
    gpu: GpuInfo
    profile: EngineProfile
    recipe: BuildRecipe
    spec: ModelSpec  # the artifact's spec at the engine's precision (its tolerances judge the engine)
    source_onnx: dict[str, str]  # {"file", "sha256"}: the ONNX TensorRT parsed
    reference_onnx: dict[str, str]  # the FP32 ONNX the engine was compared with
    builder: dict[str, Any] = field(default_factory=dict)  # workspace, timing cache, …
    build_seconds: float = 0.0
    verification: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ENGINE_FORMAT,
            "engine": self.engine,
            "sha256": self.sha256,
            "precision": self.precision.value,
            "tensorrt_version": self.tensorrt_version,
            "gpu": asdict(self.gpu),
            "profile": self.profile.to_dict(),
            "recipe": asdict(self.recipe) | {"onnx_precision": self.recipe.onnx_precision.value},
            "spec": spec_to_dict(self.spec),
            "source_onnx": self.source_onnx,
            "reference_onnx": self.reference_onnx,
            "builder": self.builder,
            "build_seconds": self.build_seconds,
            "verification": self.verification,
            "environment": self.environment,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineRecord:
        if data.get("format") != ENGINE_FORMAT:
            raise SpecError(f"engine sidecar format {data.get('format')!r} is not {ENGINE_FORMAT}; rebuild the engine")
        recipe = data["recipe"]
        return cls(
            engine=data["engine"],
            sha256=data["sha256"],
            precision=Precision(data["precision"]),
            tensorrt_version=data["tensorrt_version"],
            gpu=GpuInfo(**data["gpu"]),
            profile=EngineProfile.from_dict(data["profile"]),
            recipe=BuildRecipe(
                Precision(recipe["onnx_precision"]), bool(recipe["strongly_typed"]), bool(recipe["fp16_flag"])
            ),
            spec=spec_from_dict(data["spec"]),
            source_onnx=data["source_onnx"],
            reference_onnx=data["reference_onnx"],
            builder=data.get("builder", {}),
            build_seconds=float(data.get("build_seconds", 0.0)),
            verification=data.get("proof") or data.get("verification", {}),
            environment=data.get("environment", {}),
            created=data.get("created", ""),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def sidecar_body(self) -> dict[str, Any]:
        """The engine's own sidecar fields: what ``facebatch.core.publish``'s header (sha256, created,
        environment, proof) does not already say."""
        return {
            k: v for k, v in self.to_dict().items() if k not in ("sha256", "created", "environment", "verification")
        }


def read_engine_record(plan: Path) -> EngineRecord:
    """The sidecar beside ``plan``; one clear line when it is missing or unreadable."""
    plan = Path(plan)
    if not plan.is_file():
        raise SpecError(f"engine {plan} does not exist; build it from its ONNX file first")
    sidecar = sidecar_path(plan)
    if not sidecar.is_file():
        raise SpecError(
            f"engine {plan.name} has no sidecar {sidecar.name} beside it; facebatch needs it to know the "
            "engine's spec, profile and the GPU it was built for: rebuild it"
        )
    try:
        return EngineRecord.from_dict(json.loads(sidecar.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"engine sidecar {sidecar} is unreadable ({exc}); rebuild the engine") from None


def find_engine(onnx_path: Path, reference_sha256: str, spec: ModelSpec, precision: Precision = Precision.FP16) -> Path:
    """The engine the build made from this ONNX with the spec's profile: in
    ``engines/`` beside the ONNX's folder (build/onnx → build/engines) or in build/engines,
    with a sidecar that names exactly this file (sha256) as its FP32 reference."""
    onnx_path = Path(onnx_path)
    name = engine_filename(onnx_path.stem, precision, spec.batch)
    for folder in dict.fromkeys((onnx_path.parent.parent / "engines", DEFAULT_ENGINE_DIR)):
        plan = folder / name
        if plan.is_file() and read_engine_record(plan).reference_onnx.get("sha256") == reference_sha256:
            return plan
    raise SpecError(f"no TensorRT engine built from {onnx_path.name} ({name}); build the engine from {onnx_path} first")


def check_engine_compatible(record: EngineRecord, tensorrt_version: str, gpu: GpuInfo) -> None:
    """A plan runs only on the TensorRT version and the compute capability it was built
    with; refuse anything else before TensorRT fails on it with less to say."""
    problems = []
    if record.tensorrt_version != tensorrt_version:
        problems.append(f"TensorRT {record.tensorrt_version}, this machine has TensorRT {tensorrt_version}")
    if record.gpu.compute_capability != gpu.compute_capability:
        problems.append(
            f"compute capability {record.gpu.compute_capability} ({record.gpu.name}), "
            f"this GPU is {gpu.compute_capability} ({gpu.name})"
        )
    if problems:
        raise SpecError(f"engine {record.engine} was built for {' and '.join(problems)}; rebuild it here")
