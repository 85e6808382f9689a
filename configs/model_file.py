"""What is this ONNX file? A ``ModelFile`` carries the spec that verify, bench and the
pipeline work from, whoever made the file.

* our artifacts: the spec stored in ``metadata_props`` by the exporter; a description of a
  foreign embedder is refused, since the file describes itself;
* other SCRFD detectors (``detect_family``): a spec over the graph's own output names, the
  head every released SCRFD has, and the input size from the graph, the caller's ``size``, or
  insightface's 640 when the graph leaves it symbolic (``graph_size.detector_spec``);
* other embedders (one output): a spec from an ``EmbedderDescription`` (a YAML spec, single
  values), else ArcFace's preprocessing with a note that it was assumed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import onnx

from facebatch.configs.embedder import EmbedderDescription, embedder_spec
from facebatch.configs.family import describe_family, detect_family
from facebatch.configs.graph_size import detector_spec, shared_size_symbol, square_size_allowed
from facebatch.configs.scrfd import check_input_size
from facebatch.configs.spec import Family, ModelSpec
from facebatch.configs.spec_io import stored_spec
from facebatch.core.environment import INT8_CPU_CLASSES, file_sha256
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import load_onnx
from facebatch.core.publish import sidecar_of

OUR_SPEC = "facebatch metadata"
SEEDED_WEIGHTS = "seeded"  # metadata weights_source of artifacts exported without weights
FIX_PROP = "facebatch_fix"  # metadata_props key: the record ``facebatch fix`` leaves (JSON)


@dataclass(frozen=True)
class RecordedSource:
    """The file another was made from, as the made file records it: an FP16/INT8 conversion's FP32
    source, or the original ``facebatch fix`` repaired."""

    name: str
    sha256: str
    how: str  # "converted" (FP16, INT8) or "fixed"
    path_hint: str | None = None  # where it was when the file was made


@dataclass
class ModelFile:
    path: Path
    model: onnx.ModelProto
    spec: ModelSpec
    source: str  # where the spec came from, in words
    fixed_size: bool  # the graph runs at spec.input_size only
    notes: list[str] = field(default_factory=list)

    @cached_property
    def sha256(self) -> str:
        """Hashed once: the report and the torch reference's sidecar check both need it."""
        return file_sha256(self.path)

    @cached_property
    def props(self) -> dict[str, str]:
        return {p.key: p.value for p in self.model.metadata_props}

    @cached_property
    def recorded_weights(self) -> dict:
        """The weights record of the sidecar .json beside this file (export writes it), when
        that sidecar describes exactly this file (its sha256); {} otherwise."""
        sidecar = sidecar_of(self.path, self.sha256)  # the file is hashed once per ModelFile
        return (sidecar.get("weights") or {}) if sidecar is not None else {}

    @cached_property
    def recorded_source(self) -> RecordedSource | None:
        """What this file was made from, if it says (metadata: an FP16/INT8 file's ``source_onnx``
        and ``source_sha256``, or fix's record)."""
        if self.props.get("source_onnx"):
            return RecordedSource(self.props["source_onnx"], self.props.get("source_sha256", ""), "converted")
        try:
            record = json.loads(self.props[FIX_PROP]) if FIX_PROP in self.props else None
            source = record["source"] if isinstance(record, dict) else None
            return (
                None
                if source is None
                else RecordedSource(source["file"], source["sha256"], "fixed", source.get("path"))
            )
        except (ValueError, KeyError, TypeError, RecursionError):
            return None

    def source_file(self, search: Sequence[Path] = ()) -> Path:
        """The file this one records it was made from, proven by its sha256: looked for beside this
        file, then in ``search`` (folders), then where it was when this file was made."""
        recorded = self.recorded_source
        if recorded is None:
            raise SpecError(f"{self.path.name} records no source file (only files made by convert, quantize or fix do)")
        places = [self.path.parent, *map(Path, search)]
        candidates = [folder / recorded.name for folder in places] + (
            [Path(recorded.path_hint)] if recorded.path_hint else []
        )
        present = [c for c in candidates if c.is_file()]
        for candidate in present:
            if file_sha256(candidate) == recorded.sha256:
                return candidate
        if present:
            raise SpecError(
                f"{present[0]} is not the file {self.path.name} was {recorded.how} from (sha256 differs, "
                f"{recorded.sha256[:12]}… recorded); pass that file"
            )
        raise SpecError(
            f"{self.path.name} was {recorded.how} from {recorded.name} (sha256 {recorded.sha256[:12]}…), "
            f"which is not in {', '.join(str(p) for p in dict.fromkeys(places))}; put it beside {self.path.name}"
        )

    @cached_property
    def int8_cpu_class(self) -> str | None:
        """The CPU class (facebatch.core.environment.int8_cpu_class) an INT8 file was made and judged on."""
        try:
            recorded = json.loads(self.props.get("quantization", "{}")).get("cpu_class") or None
        except (ValueError, AttributeError, RecursionError):
            return None
        # the metadata is the file's word: only a class facebatch names (it is shown in messages)
        return recorded if recorded is None or recorded in INT8_CPU_CLASSES else "unknown"

    @property
    def precision(self) -> str:
        """fp32, fp16 or int8, as the file's metadata says (a file without it is FP32)."""
        return self.props.get("precision", "fp32")

    def int8_refusal(self, cpu_class: str) -> str | None:
        """Why the face pipeline must not run this INT8 file on a CPU of ``cpu_class``, or None: it
        runs one only when its own sidecar (``facebatch quantize``'s) says it passed the accuracy gate,
        unforced, on a CPU of this class (INT8 kernels differ between VNNI and AVX2 machines)."""
        sidecar = sidecar_of(self.path, self.sha256)
        if sidecar is None:
            return (
                f"{self.path.name} has no sidecar .json of its own, so nothing says it passed quantize's accuracy gate"
            )
        proof = sidecar.get("proof") or {}
        if not proof.get("passed") or proof.get("forced"):
            failures = "; ".join(proof.get("failures") or []) or "no passing proof recorded"
            return f"{self.path.name} did not pass quantize's accuracy gate ({failures})"
        made_on = self.int8_cpu_class
        if made_on is not None and made_on != cpu_class:
            return f"{self.path.name} was quantized and judged on a {made_on} CPU; this one is {cpu_class}"
        return None

    @property
    def seeded(self) -> bool:
        """Exported with seeded random weights (verification and benchmarks only)."""
        return self.props.get("weights_source") == SEEDED_WEIGHTS

    @property
    def family(self) -> Family:
        return self.spec.family

    @property
    def is_ours(self) -> bool:
        return self.source == OUR_SPEC

    @cached_property
    def shared_size_symbol(self) -> str | None:
        """The symbol that names both the input's height and width (insightface's exporter names
        every axis ``?``): one symbol means one value, so such a graph takes square inputs only."""
        return shared_size_symbol(self.model)

    def checked_size(self, size: tuple[int, int] | None) -> tuple[int, int]:
        """``size`` if this graph can run it (the spec's own size for None), else a one-line refusal."""
        if size is None:
            return self.spec.input_size
        size = (int(size[0]), int(size[1]))
        square_size_allowed(self.path.name, self.shared_size_symbol, size)
        if self.fixed_size and size != self.spec.input_size:
            how = " (exported with a fixed height and width)" if self.is_ours else ""
            h, w = self.spec.input_size
            raise SpecError(f"{self.path.name} runs at {h}x{w} only{how}; drop size {size[0]}x{size[1]}", field="size")
        if self.spec.head is not None:
            check_input_size(*size, self.spec.size_multiple)
        return size


REPAIRABLE = "fix repairs this graph by surgery"  # how a failing verify's note says fix can repair the file


def repaired_name(path: Path) -> str:
    """Where fix's repair of ``path`` goes when the caller names no output: the working folder (the input's may
    not be writable)."""
    return f"{Path(path).stem}_batch.onnx"


def load_model(path: Path) -> onnx.ModelProto:
    model = load_onnx(path, "model file", SpecError)
    if not model.graph.output:
        raise SpecError(f"{path} holds a graph without outputs; is it truncated or not an ONNX model?")
    return model


def read_model_file(
    path: Path,
    embedder: EmbedderDescription | None = None,
    size: tuple[int, int] | None = None,
) -> ModelFile:
    """``embedder``: what the user stated about a foreign embedder (flags or YAML), refused
    for anything else; ``size``: the input size to check at, where the graph leaves a choice
    (``verify_job.check_sizes`` refuses sizes a graph cannot run)."""
    path = Path(path)
    model = load_model(path)
    family = detect_family(model)
    stored = stored_spec(model)
    if embedder is not None and (stored is not None or family is not Family.EMBEDDER):
        what = "carries its own facebatch spec" if stored is not None else f"is {describe_family(family)}"
        raise SpecError(
            f"{path.name} {what}; drop embedder_spec and the values that describe a foreign embedder (mean, std, "
            "color_order, embedding_size, input, output)",
            field="embedder_spec",
        )
    if stored is not None:
        return ModelFile(path, model, stored, OUR_SPEC, not stored.dynamic_size)
    if family is Family.SCRFD:
        spec, fixed, notes = detector_spec(path, model, size)
        return ModelFile(path, model, spec, "inferred: SCRFD detector (by its outputs)", fixed, notes)
    if family is Family.EMBEDDER:
        notes = []
        if embedder is None:
            embedder = EmbedderDescription()
            notes.append("no embedder spec given: assuming ArcFace preprocessing (RGB, (x-127.5)/127.5)")
        if size is not None and embedder.input_size is None:
            embedder = embedder.with_overrides(input_size=size)
        spec = embedder_spec(model, embedder, path.name)
        source = "embedder spec" if not notes else "inferred: embedder (one output)"
        return ModelFile(path, model, spec, source, True, notes)
    raise SpecError(
        f"{path.name} is {describe_family(family)}; describe an embedder with an embedder_spec", field="embedder_spec"
    )


# A face embedder maps an aligned face crop to a vector of 128 to 512 values (ArcFace, MobileFaceNet); a classifier's
# few class scores, or a softmax over them, give cosines that mean nothing.
MIN_EMBEDDING_SIZE = 64
CLASSIFIER_OUTPUT_OPS = ("Softmax", "LogSoftmax")


def face_embedder_doubts(target: ModelFile) -> list[str]:
    """Why ``target`` does not look like a face embedder, in words; [] when it does."""
    spec = target.spec
    doubts = []
    if spec.embedding_size is not None and spec.embedding_size < MIN_EMBEDDING_SIZE:
        doubts.append(f"its output has {spec.embedding_size} values (face embeddings have 128 to 512)")
    output = spec.outputs[0].name
    producers = [n.op_type for n in target.model.graph.node if output in n.output]
    if producers and producers[0] in CLASSIFIER_OUTPUT_OPS:
        doubts.append(f"its output comes from a {producers[0]}, as a classifier's does")
    return doubts


DEFAULT_ARTIFACT_DIR = Path("build/onnx")


def default_artifact(role: str, directory: Path = DEFAULT_ARTIFACT_DIR) -> Path:
    """The artifact a pipeline command takes when none is named: the first FP32 artifact of
    ``role`` ("detector" or "embedder") in ``directory`` exported with real weights, read from
    the sidecars (cheap: the ONNX files are not opened). Seeded artifacts are never picked:
    their random weights find and recognise nothing."""
    seeded = []
    for onnx_path in sorted(Path(directory).glob("*.onnx")):
        try:
            sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(sidecar, dict):
            continue
        spec = sidecar.get("spec") or {}
        if sidecar.get("artifact") != onnx_path.name or sidecar.get("precision", "fp32") != "fp32":
            continue
        if (spec.get("family") == Family.SCRFD.value) != (role == "detector"):
            continue
        if (sidecar.get("weights") or {}).get("kind") == SEEDED_WEIGHTS:
            seeded.append(onnx_path.name)
            continue
        return onnx_path
    found = (
        f"{directory} holds only {', '.join(seeded)}, exported with seeded random weights (they find nothing)"
        if seeded
        else f"no {role} artifact in {directory}"
    )
    example = (
        "det_10g.onnx, or our re-export of it"
        if role == "detector"
        else "w600k_r50.onnx, or a described embedder's .yaml"
    )
    raise SpecError(f"{found}; name the {role} ONNX file ({example}), or export one with real weights", field=role)


def int8_twin(model: ModelFile, cpu_class: str) -> tuple[Path | None, str]:
    """The INT8 file quantized from ``model`` (its sidecar names ``model``'s sha256 as its source)
    beside it that the pipeline may run on ``cpu_class`` (``ModelFile.int8_refusal``), or None and
    why there is none."""
    refusals = []
    for sidecar_file in sorted(model.path.parent.glob("*.json")):
        try:
            sidecar = json.loads(sidecar_file.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(sidecar, dict) or sidecar.get("precision") != "int8":
            continue
        if (sidecar.get("source") or {}).get("sha256") != model.sha256 or not isinstance(sidecar.get("artifact"), str):
            continue
        candidate = model.path.parent / sidecar["artifact"]
        if not candidate.is_file():
            continue
        refusal = read_model_file(candidate).int8_refusal(cpu_class)
        if refusal is None:
            return candidate, ""
        refusals.append(refusal)
    if refusals:
        return None, "; ".join(refusals)
    return None, f"no INT8 file quantized from {model.path.name} is beside it"
