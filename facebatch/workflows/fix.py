"""``fix``: a batch-1 graph made batch-keeping by graph surgery, without PyTorch, proven, written, then verified.

1. the surgery (``facebatch.workflows.fix_surgery``); what it cannot repair is refused, naming the node;
2. the proof: on distinct frames, each frame's outputs from the repaired graph run as one batch equal the
   original graph's single-frame outputs (≤ 1e-5); a repair that fails it writes nothing;
3. the write: atomically, with its record (metadata and a sidecar: the source's sha256, every repair, the proof);
4. the verification: the six checks on the written file, with the original (run one frame at a time) as
   check 4's reference.

``fix_model`` is the use case, all four steps (the command and ``facebatch.fix`` both call it); ``fix_onnx``
is steps 1–3, for callers that verify the file their own way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from facebatch.configs.license import license_of
from facebatch.configs.model_file import FIX_PROP, REPAIRABLE, load_model, read_model_file, repaired_name
from facebatch.configs.spec_io import stored_spec
from facebatch.core.atomic import check_output_file
from facebatch.core.errors import VerificationFailed
from facebatch.core.progress import step
from facebatch.core.publish import draft, publish, sidecar_path
from facebatch.engines.pipeline.photo_files import proof_photos
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.verify.independence import INDEPENDENCE_ATOL
from facebatch.verify.reference import onnx_reference
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions, check_verify_values
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.fix_surgery import Repair, plan_repair

REPAIR_ATOL = INDEPENDENCE_ATOL  # the same gate as check 1: a frame inside a batch equals it alone
PROOF_FRAMES = 4


@dataclass
class FixOptions:
    """How ``fix_model`` proves and verifies the repair: the verifier's own defaults unless told."""

    sizes: Sequence[tuple[int, int]] | None = (
        None  # input sizes the checks run at, the first the proof's (None: its own)
    )
    batch_sizes: Sequence[int] = VerifyOptions.batch_sizes
    photos: Sequence[Path] = ()
    seed: int = VerifyOptions.seed
    det_thresh: float = VerifyOptions.det_thresh
    nms_thresh: float = VerifyOptions.nms_thresh
    strict: bool = VerifyOptions.strict

    def __post_init__(self) -> None:
        self.photos = proof_photos(self.photos)  # photos or folders of them, as every command takes them
        check_verify_values(self.batch_sizes, self.det_thresh, self.nms_thresh)  # before anything is written

    @property
    def proof_size(self) -> tuple[int, int] | None:
        return self.sizes[0] if self.sizes else None

    def verify_options(self, original: Path) -> VerifyOptions:
        """The checks of the repaired file: check 4 against ``original``, run one frame at a time (it may mix them)."""
        return VerifyOptions(
            batch_sizes=self.batch_sizes,
            photos=self.photos,
            seed=self.seed,
            sizes=self.sizes,
            reference=onnx_reference(original, one_frame_at_a_time=True),
            det_thresh=self.det_thresh,
            nms_thresh=self.nms_thresh,
            strict=self.strict,
        )


@dataclass
class FixResult:
    path: Path
    repairs: list[Repair] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    proof_max_diff: float = float("nan")
    proof_frames: int = 0
    source_sha256: str = ""
    written: bool = False  # False: nothing to fix, nothing written
    source: Path | None = None
    verify: VerifyReport | None = None  # the checks of the written file (fix_model; None: not verified)

    @property
    def changes(self) -> list[str]:
        return [str(r) for r in self.repairs]

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    @property
    def passed(self) -> bool:
        """Repaired and proven (or nothing to repair), and the written file passes its checks where they ran."""
        return self.verify is None or self.verify.passed

    def refusal(self) -> VerificationFailed | None:
        """The error the command exits with when the written file fails its checks; None when it passes."""
        return None if self.passed else VerificationFailed(self.verify.failure_line())  # type: ignore[union-attr]

    def lines(self) -> list[str]:
        """What fix did, a line each."""
        name = (self.source or self.path).name
        if not self.written:
            return [
                f"nothing to fix: {name} carries a symbolic batch on every input and output and the lint finds "
                "nothing that folds, moves or pins it; nothing was written (verify checks it as it is)"
            ]
        lines = [f"fixed: {change}" for change in self.changes]
        if self.renamed:
            lines.append("renamed outputs: " + ", ".join(f"{a} → {b}" for a, b in self.renamed.items()))
        lines.append(
            f"proof: repaired per-frame outputs vs original single-frame outputs, max abs diff "
            f"{self.proof_max_diff:.3g} (≤ {REPAIR_ATOL:g})"
        )
        lines.append(f"wrote {self.path} and {self.sidecar.name} (the source's sha256, every repair, the proof)")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": None if self.source is None else str(self.source),
            "source_sha256": self.source_sha256,
            "artifact": self.path.name,
            "path": str(self.path),
            "written": self.written,
            "passed": self.passed,
            "repairs": [r.to_dict() for r in self.repairs],
            "renamed_outputs": self.renamed,
            "proof": {"max_abs_diff": self.proof_max_diff, "atol": REPAIR_ATOL, "frames": self.proof_frames},
            "verify": None if self.verify is None else self.verify.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# fix: {(self.source or self.path).name} → {self.path.name}", ""]
        lines += [f"- {line}" for line in self.lines()]
        if self.verify is not None:
            lines += ["", self.verify.to_markdown()]
        return "\n".join(lines) + "\n"


def fix_model(source: Path, out: Path, options: FixOptions | None = None) -> FixResult:
    """The use case: repair ``source`` into ``out`` by surgery, prove it, write it, then verify the written
    file against ``source`` (``result.verify``; ``result.passed`` is the verdict, ``result.refusal()`` the
    error when it fails). What surgery cannot repair, or a repair the proof fails, raises
    ``VerificationFailed`` and writes nothing; a file with nothing to repair is left alone (``written`` False)."""
    options = options or FixOptions()
    source, out = Path(source), Path(out)
    check_output_file(out, "out", inputs=[source])  # refused before the step line: nothing started
    with step(f"repair {source.name} by graph surgery and prove it frame by frame"):
        result = fix_onnx(source, out, size=options.proof_size)
    if result.written:
        result.verify = verify_model(result.path, options.verify_options(source))
    return result


def prove_repair(original: Runner, repaired: Runner, renames: dict[str, str], frames: np.ndarray) -> float:
    """Max abs diff between the repaired graph's per-frame outputs (one batch) and the
    original's single-frame outputs, output by output (both runners active)."""
    (source,) = original.inputs
    singles = [original.infer({source.name: f[None]}) for f in frames]
    batched = repaired.infer({source.name: frames})
    worst = 0.0
    for name in original.output_names:
        ours = batched[renames.get(name, name)]
        if ours.ndim == 0 or ours.shape[0] != len(frames):
            return float("inf")  # the repaired graph still loses or folds the batch
        for j, single in enumerate(singles):
            theirs = single[name].reshape(ours.shape[1:])  # [rows, C] official → [rows, C] per frame
            worst = max(worst, float(np.max(np.abs(ours[j].astype(np.float64) - theirs))))
    return worst


def fix_onnx(
    source: Path, target: Path, size: tuple[int, int] | None = None, frames: np.ndarray | None = None
) -> FixResult:
    """Steps 1–3: repair ``source`` into ``target``, proven on ``frames`` (default: seeded frames at
    ``size`` or the model's own size) before anything is written; not verified (``fix_model`` is)."""
    check_output_file(Path(target), "out", inputs=[Path(source)])
    original = read_model_file(source, size=size)
    size = original.checked_size(size)
    plan = plan_repair(original.model)
    if plan.remaining:
        first = plan.remaining[0]
        raise VerificationFailed(
            f"{Path(source).name}: {len(plan.remaining)} batch problem(s) facebatch cannot repair by surgery; first: "
            f"{first.op_type} {first.node}: {first.message}"
        )
    result = FixResult(Path(target), plan.repairs, plan.renamed, source_sha256=original.sha256, source=Path(source))
    if plan.already_batched:
        return result  # nothing to fix: nothing is written
    onnx.checker.check_model(plan.model)
    if frames is None:
        frames = model_frames(original, size, PROOF_FRAMES)
    with OnnxRuntimeRunner(original.path) as before, OnnxRuntimeRunner(plan.model, label=Path(target).name) as after:
        result.proof_max_diff = prove_repair(before, after, plan.renamed, frames)
    if not result.proof_max_diff <= REPAIR_ATOL:
        raise VerificationFailed(
            f"the repaired graph's per-frame outputs differ from the original's single-frame outputs by "
            f"{result.proof_max_diff:.3g} (> {REPAIR_ATOL:g}); nothing was written"
        )
    result.proof_frames = len(frames)
    record = fix_record(result, Path(source))
    onnx.helper.set_model_props(
        plan.model, {p.key: p.value for p in plan.model.metadata_props} | {FIX_PROP: json.dumps(record)}
    )
    with draft(Path(target), "out", inputs=[Path(source)]) as candidate:
        onnx.save(plan.model, str(candidate.path))
        body = {k: v for k, v in record.items() if k not in ("source", "proof")}
        body["license"] = license_of(original).to_dict()  # the repaired file's weights are the original's
        publish(candidate, "facebatch fix", body, source=record["source"], proof=record["proof"])
    result.written = True
    return result


def fix_record(result: FixResult, source: Path) -> dict:
    """What ``fix`` did, for the metadata and the sidecar: the source, every repair, the proof."""
    return {
        "fixed_by": "facebatch fix",
        "source": {"file": source.name, "sha256": result.source_sha256, "path": str(source.resolve())},
        "repairs": [r.to_dict() for r in result.repairs],
        "renamed_outputs": result.renamed,
        "proof": {
            "max_abs_diff": result.proof_max_diff,
            "atol": REPAIR_ATOL,
            "frames": result.proof_frames,
            "how": "each frame's outputs of the repaired graph, run as one batch, against the original's single-frame outputs",
        },
    }


def repair_hint(path: Path) -> str | None:
    """A sentence for a failing verify of a file whose every batch problem ``fix`` repairs
    (never for our own artifacts: those are re-exported, not patched)."""
    model = load_model(path)
    if stored_spec(model) is not None:
        return None
    plan = plan_repair(model)
    if not plan.repairs_everything:
        return None
    return (
        f"{REPAIRABLE} ({len(plan.changes)} change(s)) into {repaired_name(path)} and proves each frame's repaired "
        "outputs equal the original's"
    )
