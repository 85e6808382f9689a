"""Which models the face pipeline runs, from what a caller names: the same answer, with the same proofs
and refusals, for the command line and the Python API.

- A model not named is the first one of its role with real weights in ``build/onnx`` (said in a note).
- A detector must be an SCRFD detector, an embedder an embedder that looks like a face embedder (a
  classifier's or a 16-value output would give cosines that mean nothing).
- An INT8 file runs only where quantize's accuracy gate passed it on this CPU class; with precision
  ``int8`` an FP32 file's gated INT8 twin beside it runs instead (or the FP32 file, with a note why).
- With precision ``bf16`` (OpenVINO) each model runs in bfloat16 only where its BF16 proof passed for this file
  on this CPU class (``workflows.bf16_record``); refused in one line otherwise.
- With precision ``auto`` each model runs in the fastest precision this CPU class has a passing proof for
  (``defaults.AUTO_ORDER``), each choice said in a note and recorded (``PipelineModels.to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from facebatch.configs.embedder import EmbedderDescription, read_embedder_description, read_embedder_file
from facebatch.configs.family import describe_family
from facebatch.configs.model_file import (
    ModelFile,
    default_artifact,
    face_embedder_doubts,
    int8_twin,
    read_model_file,
)
from facebatch.core.environment import int8_cpu_class
from facebatch.core.errors import SpecError
from facebatch.core.progress import note
from facebatch.engines.pipeline.defaults import DEFAULT_PRECISION, PRECISIONS
from facebatch.engines.runners.openvino_runner import OpenVinoCpu, detect_openvino_cpu
from facebatch.workflows.bf16_record import bf16_refusal

SPEC_SUFFIXES = (".yaml", ".yml")

ModelLike = Path | str | ModelFile


@dataclass(frozen=True)
class ModelOptions:
    """The pipeline's models as a caller names them."""

    detector: ModelLike | None = None  # an SCRFD ONNX; None: the first detector with real weights in build/onnx
    embedder: ModelLike | None = None  # an embedder ONNX, or a spec .yaml naming it under 'model:'; None: as detector
    embedder_spec: Path | None = None  # what a foreign embedder ONNX is (input size, mean, std, …)
    embedder_description: EmbedderDescription | None = None  # the same, stated as a value (the CLI's single flags)
    size: tuple[int, int] | None = None  # the detector's input size, for a detector that takes several
    # fp32; int8: each model's gated INT8 twin where there is one; bf16: proven; auto: the fastest proven of these
    precision: str = DEFAULT_PRECISION
    openvino: OpenVinoCpu | None = None  # bf16, auto: what OpenVINO says of the CPU; None: read from this one

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise SpecError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}", field="precision")


@dataclass(frozen=True)
class ModelChoice:
    """One model as the pipeline runs it: the file, what it computes in (``fp32``, ``int8``, ``bf16``, or an FP16
    file's ``fp16``) and why, in words (said in a note under ``auto``)."""

    role: str  # "detector" or "embedder"
    file: ModelFile
    precision: str
    why: str

    @property
    def bf16(self) -> bool:
        """The runner computes in bfloat16 (OpenVINO's hint): its proof was checked."""
        return self.precision == "bf16"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file.path.name, "precision": self.precision, "why": self.why}


@dataclass(frozen=True)
class PipelineModels:
    """The pipeline's models, each with its own precision (a BF16 detector beside an FP32 embedder)."""

    detector: ModelChoice
    embedder: ModelChoice | None = None

    @property
    def files(self) -> tuple[ModelFile, ModelFile | None]:
        return self.detector.file, self.embedder.file if self.embedder is not None else None

    @property
    def bf16_files(self) -> frozenset[Path]:
        """The files the runners compute in bfloat16 (``RunnerOptions.bf16_files``)."""
        return frozenset(c.file.path for c in (self.detector, self.embedder) if c is not None and c.bf16)

    @property
    def precisions(self) -> dict[str, str]:
        """Per role, the precision it computes in (what a gallery or an embed .npz records)."""
        return {c.role: c.precision for c in (self.detector, self.embedder) if c is not None}

    def to_dict(self) -> dict[str, Any]:
        """Per role, the file, the precision it ran in and why (a report's ``precision`` field)."""
        return {c.role: c.to_dict() for c in (self.detector, self.embedder) if c is not None}


def pipeline_models(options: ModelOptions, embed: bool = True) -> tuple[ModelFile, ModelFile | None]:
    """The detector (and, with ``embed``, the embedder) ``options`` name, each proven to be what it is named
    as, in the precision asked for (``auto`` without a backend: never BF16, see ``choose_models``)."""
    return choose_models(options, embed).files


def choose_models(
    options: ModelOptions, embed: bool = True, backend: str | None = None, asked: Mapping[str, str] | None = None
) -> PipelineModels:
    """The models ``options`` name, proven, each with the precision it runs in on ``backend`` (BF16 only on
    openvino; None: a gallery or a benchmark, so ``auto`` never picks BF16); ``asked``: per role a precision
    instead of ``options.precision`` (search following its gallery's record)."""
    asked = asked or {}
    detector = _detector(replace(options, precision=asked.get("detector", options.precision)), backend)
    if not embed:
        return PipelineModels(detector)
    return PipelineModels(
        detector, _embedder(replace(options, precision=asked.get("embedder", options.precision)), backend)
    )


def _detector(options: ModelOptions, backend: str | None) -> ModelChoice:
    detector = _model_file(options.detector, "detector", size=options.size)
    if detector.family.is_embedder:
        raise SpecError(f"detector {detector.path.name} is an embedder; pass an SCRFD detector", field="detector")
    check_detector_size(detector, options.size)
    return choose(detector, "detector", options.precision, options.size, options.openvino, backend)


def check_detector_size(detector: ModelFile, size: tuple[int, int] | None) -> None:
    """Refuse a ``size`` the detector cannot run (a graph whose input size is fixed runs at that size only), saying
    how to get a detector of that size, rather than run at its own size without a word."""
    if size is None:
        return
    h, w = int(size[0]), int(size[1])
    if detector.fixed_size and (h, w) != detector.spec.input_size:
        fixed_h, fixed_w = detector.spec.input_size
        raise SpecError(
            f"detector {detector.path.name} runs at {fixed_h}x{fixed_w} only, not at size {h}x{w}: its input is fixed "
            f"in the file. Drop it, or export a {h}x{w} detector from this file's weights (the export takes an ONNX "
            "file as weights; with a dynamic size the export runs at any size)",
            field="size",
        )
    detector.checked_size((h, w))  # a size the graph can take (square where one symbol names both, a stride's multiple)


def _embedder(options: ModelOptions, backend: str | None) -> ModelChoice:
    description = options.embedder_description
    if isinstance(options.embedder, ModelFile):
        embedder = options.embedder
    else:
        path = Path(options.embedder) if options.embedder is not None else _picked_default("embedder")
        check_not_folder(path, "embedder")
        if path.suffix.lower() in SPEC_SUFFIXES:
            if options.embedder_spec is not None:
                raise SpecError(
                    f"embedder {path.name} is a spec already; give no embedder_spec beside it", field="embedder_spec"
                )
            path, description = read_embedder_file(path)
        elif options.embedder_spec is not None and description is None:
            description = read_embedder_description(options.embedder_spec)
        embedder = read_model_file(path, description)
    if not embedder.family.is_embedder:
        raise SpecError(
            f"embedder {embedder.path.name} is {describe_family(embedder.family)}; pass an embedder", field="embedder"
        )
    doubts = face_embedder_doubts(embedder)
    if doubts:
        raise SpecError(
            f"embedder {embedder.path.name} does not look like a face embedder: {'; '.join(doubts)}; its cosines "
            "would mean nothing. Pass a face embedder (an ArcFace model, or one made batchable by fix)",
            field="embedder",
        )
    for remark in embedder.notes:
        note(f"{embedder.path.name}: {remark} (describe it with an embedder spec if it differs)")
    return choose(embedder, "embedder", options.precision, None, options.openvino, backend)


def _model_file(item: ModelLike | None, role: str, size: tuple[int, int] | None) -> ModelFile:
    if isinstance(item, ModelFile):
        return item
    if item is not None:
        check_not_folder(Path(item), role)
    return read_model_file(Path(item) if item is not None else _picked_default(role), size=size)


def check_not_folder(path: Path, role: str) -> None:
    """A folder named as a model is refused as a folder (not as a file that 'does not exist'), naming the .onnx
    files in it that could be meant."""
    if not path.is_dir():
        return
    what = {"detector": "an SCRFD detector's .onnx file", "embedder": "an embedder's .onnx file (or its spec .yaml)"}
    inside = sorted(p.name for p in path.glob("*.onnx") if p.is_file())[:4]
    there = f" (it holds {', '.join(inside)})" if inside else " (it holds no .onnx file)"
    raise SpecError(f"{role} {path} is a folder; name {what.get(role, 'the .onnx file')} in it{there}", field=role)


def _picked_default(role: str) -> Path:
    """The model of ``role`` taken from build/onnx because none was named: say which."""
    path = default_artifact(role)
    note(f"{role}: using {path} (name another to run it)")
    return path


def runnable(
    model: ModelFile,
    role: str,
    precision: str = DEFAULT_PRECISION,
    size: tuple[int, int] | None = None,
    openvino: OpenVinoCpu | None = None,
) -> ModelFile:
    """``model`` as the pipeline may run it: an INT8 file only when quantize's gate passed it on this CPU
    class (refused otherwise, in one line); with ``precision`` int8, an FP32 file's gated INT8 twin beside
    it, or the FP32 file itself with a note saying why there is none; with ``precision`` bf16, the file
    itself where its BF16 proof passed on this CPU class (``openvino``; None: this machine's)."""
    return choose(model, role, precision, size, openvino).file


def choose(
    model: ModelFile,
    role: str,
    precision: str = DEFAULT_PRECISION,
    size: tuple[int, int] | None = None,
    openvino: OpenVinoCpu | None = None,
    backend: str | None = None,
) -> ModelChoice:
    """``runnable``'s answer with the precision the model runs in and why; with ``precision`` auto, the first
    of ``defaults.AUTO_ORDER`` this CPU class has a passing proof for (BF16 only on the openvino ``backend``), said in a
    note."""
    if precision == "bf16":
        refusal = bf16_refusal(model, openvino or detect_openvino_cpu())
        if refusal is not None:
            raise SpecError(
                f"{role} {model.path.name} cannot run in precision bf16: {refusal}. Prove it in BF16 on this CPU "
                "class with photos that show faces, or run it in fp32",
                field="precision",
            )
        return ModelChoice(role, model, "bf16", "its BF16 proof passed on this CPU class")
    cpu_class = int8_cpu_class()
    if model.precision == "int8":
        refusal = model.int8_refusal(cpu_class)
        if refusal is not None:
            raise SpecError(
                f"{role} {model.path.name}: {refusal}; the pipeline runs INT8 only where the gate passed: quantize "
                "its FP32 source on this CPU class (with calibration photos), or pass the FP32 file",
                field=role,
            )
        return _said(precision, ModelChoice(role, model, "int8", f"quantize's gate passed it on {cpu_class} CPUs"))
    if precision == "fp32" or model.precision != "fp32":
        why = "asked for" if precision == "fp32" else f"an {model.precision.upper()} file runs as it is"
        return _said(precision, ModelChoice(role, model, model.precision, why))
    twin, why_not = int8_twin(model, cpu_class)
    if twin is not None:
        if precision == "int8":
            note(f"precision int8: {role} {twin.name} (quantize's gate passed it on {cpu_class} CPUs)")
        twin_file = read_model_file(twin, size=size)
        return _said(precision, ModelChoice(role, twin_file, "int8", f"quantize's gate passed it on {cpu_class} CPUs"))
    if precision == "int8":
        note(f"precision int8: {why_not}; {model.path.name} runs in FP32 (quantize it with calibration photos)")
        return ModelChoice(role, model, "fp32", why_not)
    not_bf16 = _bf16_refusal_on(model, openvino, backend)
    if not_bf16 is None:
        return _said(precision, ModelChoice(role, model, "bf16", "its BF16 proof passed on this CPU class"))
    return _said(precision, ModelChoice(role, model, "fp32", f"{why_not}; not bf16: {not_bf16}"))


def _bf16_refusal_on(model: ModelFile, openvino: OpenVinoCpu | None, backend: str | None) -> str | None:
    """Why ``auto`` does not run ``model`` in BF16 on ``backend``; None where it may (OpenVINO is read only then)."""
    if backend is None:
        return "BF16 is not chosen for a gallery or a benchmark, whose runners compute in FP32 or INT8"
    if backend != "openvino":
        return f"BF16 runs on the openvino backend only, not on {backend}"
    return bf16_refusal(model, openvino or detect_openvino_cpu())


def _said(precision: str, choice: ModelChoice) -> ModelChoice:
    """Under ``auto``, the choice in one note line (``detector det_2.5g.onnx: bf16 (its BF16 proof passed …)``)."""
    if precision == "auto":
        note(f"{choice.role} {choice.file.path.name}: {choice.precision} ({choice.why})")
    return choice
