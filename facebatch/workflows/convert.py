"""``facebatch convert --fp16``: an FP32 artifact → its FP16 ONNX, proven before it is written.

The FP16 graph is saved as a draft beside the target (``facebatch.core.publish``) and verified there like
``facebatch verify --strict`` with the FP32 source as the check-4 reference, at the FP16
tolerances its spec now carries: raw outputs per role, decoded faces (detectors, trained
weights), embedding cosine, batch independence at ``FP16_INDEPENDENCE_ATOL``, the static
lint. Only a passing graph is published, with its sidecar (what was converted, how, and the
verification as its proof), as every writer publishes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.license import license_of
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.atomic import check_output_file
from facebatch.core.errors import SpecError, VerificationFailed
from facebatch.core.progress import step, warn
from facebatch.core.publish import draft, publish, sidecar_path
from facebatch.engines.build.fp16 import Fp16Conversion, convert_to_fp16, stamp_fp16
from facebatch.engines.pipeline.defaults import DEFAULT_FRAME_SEED
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.verify.independence import DEFAULT_BATCH_SIZES
from facebatch.verify.reference import onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions, check_verify_values
from facebatch.verify.verify_job import run_checks as verify_model

FP16_SUFFIX = "_fp16"


@dataclass
class ConvertOptions:
    fp16_io: bool = False
    photos: Sequence[Path] = ()
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    seed: int = DEFAULT_FRAME_SEED
    size: tuple[int, int] | None = None  # foreign SCRFD files with a symbolic size
    embedder: EmbedderDescription | None = None  # foreign embedders
    det_thresh: float = DET_THRESH
    nms_thresh: float = NMS_THRESH

    def __post_init__(self) -> None:
        self.photos = proof_photos(self.photos)  # photos or folders of them, as every command takes them
        check_verify_values(self.batch_sizes, self.det_thresh, self.nms_thresh)  # before anything is written


@dataclass
class ConvertResult:
    source: Path
    path: Path  # where the FP16 artifact is (or would have been) written
    conversion: Fp16Conversion
    report: VerifyReport
    written: bool  # False: the gate failed and nothing was written
    notes: list[str] = field(default_factory=list)

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    @property
    def passed(self) -> bool:
        return self.report.passed

    def refusal(self) -> VerificationFailed | None:
        """The error the command exits with when the FP16 graph fails its gate (nothing written); None when it passed."""
        return None if self.written else VerificationFailed(f"{self.report.failure_line()}; nothing was written")

    def lines(self) -> list[str]:
        """The conversion and its outcome, a line each (the verify report is rendered apart)."""
        lines = [f"FP16: {self.conversion.describe()}"]
        if self.written:
            lines += [f"note: {note}" for note in self.notes] + [f"wrote {self.path} and {self.sidecar.name}"]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "artifact": self.path.name,
            "path": str(self.path),
            "written": self.written,
            "passed": self.passed,
            "conversion": self.conversion.describe(),
            "notes": self.notes,
            "verify": self.report.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# convert to FP16: {self.source.name} → {self.path.name}", ""]
        lines += [f"- {line}" for line in self.lines()]
        lines += [f"- **not written**: {self.report.failure_line()}"] if not self.written else []
        return "\n".join(lines) + "\n\n" + self.report.to_markdown()


def default_fp16_path(source: Path) -> Path:
    """``scrfd_10g_320_batch.onnx`` → ``scrfd_10g_320_batch_fp16.onnx`` beside it."""
    return source.with_name(f"{source.stem}{FP16_SUFFIX}.onnx")


def _fp16_model(target: ModelFile, options: ConvertOptions) -> tuple[onnx.ModelProto, Fp16Conversion]:
    with step(f"convert {target.path.name} to FP16"):
        conversion = convert_to_fp16(target.model, target.spec, options.fp16_io, target.seeded)
    if not target.is_ours:  # the FP16 file carries the spec it was checked with; a symbolic size stays symbolic
        conversion.spec = replace(conversion.spec, dynamic_size=not target.fixed_size)
    return stamp_fp16(conversion, target.props, target.path.name, target.sha256), conversion


def _fp16_record(result: ConvertResult, weights: dict[str, Any]) -> dict[str, Any]:
    """The conversion's own sidecar fields (``facebatch.core.publish`` writes the header)."""
    conversion = result.conversion
    return {
        "precision": conversion.spec.precision.value,
        "conversion": {
            "converter": "onnxconverter-common float16",
            "fp16_io": conversion.fp16_io,
            "op_block_list": list(conversion.op_block_list),
            "kept_fp32_in_graph": [op for op in conversion.present_blocked if op != "none"],
            "weights_raised_to_min_positive": conversion.flushed,
            "weights_clamped_to_max_finite": conversion.clamped,
        },
        "tolerances": {
            t.name: {"atol": t.atol, "rtol": t.rtol, "min_cosine": t.min_cosine} for t in conversion.spec.outputs
        },
        "spec": spec_to_dict(conversion.spec),
        "weights": weights,  # the source's weights record: verify --reference torch rebuilds the model from it
    }


def source_record(source: ModelFile) -> dict[str, Any]:
    """A derived artifact's source for its sidecar header: the file and its sha256."""
    return {"artifact": source.path.name, "sha256": source.sha256}


def convert_fp16(source: Path, out: Path | None = None, options: ConvertOptions | None = None) -> ConvertResult:
    """Convert, verify in a temp file, and write only what passes (then its sidecar); a
    graph that fails its gate comes back with ``written`` False and its report."""
    options = options or ConvertOptions()
    source = Path(source)
    target = read_model_file(source, options.embedder, options.size)
    out = Path(out) if out is not None else default_fp16_path(source)
    if out.suffix != ".onnx":
        raise SpecError(f"out must name an .onnx file, not {out}", field="out")
    if out.resolve() == source.resolve():
        raise SpecError("out must name a new file; convert never overwrites its source", field="out")
    check_output_file(out, "out", inputs=[source])
    target.spec.require_fp32(source.name)
    if target.spec.head is not None and not target.seeded and not options.photos:
        # the gate is strict and a trained detector finds no face in noise frames: check 3 would skip after all the work
        raise SpecError(
            f"{source.name} is a trained detector: its FP16 gate compares the faces it finds, so pass photos "
            "that show faces",
            field="photos",
        )
    model, conversion = _fp16_model(target, options)
    notes = [f"replaced the existing {out}"] if out.exists() else []
    verify_options = VerifyOptions(
        batch_sizes=options.batch_sizes,
        photos=options.photos,
        seed=options.seed,
        sizes=[options.size] if options.size else None,
        reference=onnx_reference(source),
        det_thresh=options.det_thresh,
        nms_thresh=options.nms_thresh,
        strict=True,
    )
    with draft(out, "out", inputs=[source]) as candidate:
        with step(f"write the FP16 graph to a temp file beside {out.name}"):
            onnx.save(model, candidate.path)
        report = verify_model(candidate.path, verify_options)
        result = ConvertResult(source, out, conversion, report, report.passed, notes)
        if not report.passed:
            return result  # the draft is removed, nothing is replaced
        if notes:
            warn(notes[0])
        publish(
            candidate,
            "facebatch convert --fp16",
            _fp16_record(result, target.recorded_weights) | {"license": license_of(target).to_dict()},
            source=source_record(target),
            proof=report.proof_record(),
        )
    return result
