"""``verify_model``: every check on one ONNX file, collected into a ``VerifyReport``.

Order: static checks first (6 lint, 2 layout), then parity against a reference (4, so a bad
reference fails fast), then batch independence (1) on distinct frames, with the decoded
detections of the same runs (3), then localisation (5) when frames mixed. A file whose batch
is fixed to 1 is judged as users would batch it: the checks run on a copy with the batch
made symbolic, and check 2 fails for the fixed axis itself.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from facebatch.configs.embedder import EmbedderDescription
from facebatch.engines.preprocess import proof_frames
from facebatch.engines.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.environment import environment
from facebatch.errors import SpecError
from facebatch.progress import step
from facebatch.verify.decoded import DecodedIndependence
from facebatch.verify.independence import (
    DEFAULT_BATCH_SIZES,
    INDEPENDENCE_ATOL,
    IndependenceReport,
    SliceDiff,
    verify_batch_independence,
)
from facebatch.verify.layout import io_dims
from facebatch.verify.lint import Finding, io_findings, lint_graph, relaxed_batch
from facebatch.verify.localize import localise
from facebatch.verify.reference import ReferenceRequest, ReferenceResult, compare_with_reference
from facebatch.verify.report import FAIL, PASS, SKIP, CheckResult, VerifyReport
from facebatch.verify.target import VerifyTarget, target_from_onnx

MAX_LISTED = 12


@dataclass
class VerifyOptions:
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    photos: Sequence[Path] = ()
    seed: int = 0
    embedder: EmbedderDescription | None = None
    size: tuple[int, int] | None = None
    atol: float = INDEPENDENCE_ATOL
    reference: ReferenceRequest | None = None  # check 4; None skips it
    det_thresh: float = DET_THRESH  # check 3 (SCRFD): the reference pipeline's thresholds
    nms_thresh: float = NMS_THRESH


def verification_frames(target: VerifyTarget, count: int, photos: Sequence[Path], seed: int) -> np.ndarray:
    h, w = target.input_size
    fit = "letterbox" if target.family == "scrfd" else "center"
    return proof_frames(count, h, w, target.spec.normalize, photos, seed, fit=fit)


def _listed(lines: list[str]) -> list[str]:
    return lines[:MAX_LISTED] + ([f"… and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else [])


def _lint_check(findings: list[Finding]) -> CheckResult:
    lint = [f for f in findings if f.check == "lint"]
    if not lint:
        return CheckResult(6, "static lint", PASS, "no Reshape/Transpose/Flatten/reduction folds, moves or fixes the batch")
    first = lint[0]
    return CheckResult(
        6, "static lint", FAIL, f"{len(lint)} finding(s); first: {first.op_type} {first.node}: {first.message}",
        _listed([f"{f.op_type} {f.node}: {f.message}" for f in lint]), {"findings": [f.to_dict() for f in lint]},
    )  # fmt: skip


def _layout_check(findings: list[Finding], independence: IndependenceReport) -> CheckResult:
    static = [f.message for f in findings if f.check == "layout"]
    dynamic = [d.describe() for d in independence.layout_failures()]
    problems = static + dynamic
    data = {"static": static, "dynamic": [d.describe() for d in independence.layout_failures()]}
    if not problems:
        sizes = ", ".join(map(str, independence.batch_sizes))
        return CheckResult(2, "layout", PASS, f"every output's dim 0 equals N for N = {sizes}; batch symbolic; no symbol reused", data=data)
    return CheckResult(2, "layout", FAIL, f"{len(problems)} problem(s); first: {problems[0]}", _listed(problems), data)


def _independence_check(report: IndependenceReport, relaxed: bool) -> CheckResult:
    how = " (run with the batch made symbolic, as users do)" if relaxed else ""
    data = report.to_dict()
    if report.error:
        return CheckResult(1, "batch independence", FAIL, report.error + how, data=data)
    values = report.value_failures()
    layouts = report.layout_failures()
    worst = report.worst()
    worst_text = f"max diff {worst.max_abs_diff:.3g} ({worst.output} @ batch {worst.batch})" if worst else "nothing comparable"
    details = _listed([d.describe() for d in values + layouts])
    if not values and not layouts:
        summary = f"every frame equals its single-frame run: {worst_text} < {report.atol:g}{how}"
        return CheckResult(1, "batch independence", PASS, summary, [d.describe() for d in _per_batch_maxima(report)], data)
    reason = []
    if values:
        v = max(values, key=lambda d: d.max_abs_diff)
        reason.append(f"frames differ from their single runs by up to {v.max_abs_diff:.3g} ({v.output} @ batch {v.batch}, frame {v.frame})")
    if layouts:
        reason.append(f"{len(layouts)} output/batch pairs cannot be sliced per frame ({layouts[-1].describe()})")
    return CheckResult(1, "batch independence", FAIL, "; ".join(reason) + how, details, data)


def _decoded_check(decoded: DecodedIndependence | None, target: VerifyTarget) -> CheckResult:
    name = "decoded independence"
    if decoded is None:
        return CheckResult(3, name, SKIP, f"{target.family} model: no decode step (raw outputs are check 1)")
    data = decoded.to_dict()
    if decoded.error:
        return CheckResult(3, name, FAIL, f"detections cannot be read per frame: {decoded.error}", data=data)
    if not decoded.batches:
        return CheckResult(3, name, FAIL, "no batch ran, so no detections could be compared (see check 1)", data=data)
    thresholds = f"det_thresh {decoded.det_thresh:g}, NMS {decoded.nms_thresh:g}"
    mismatches = [m for b in decoded.batches for m in b.mismatches]
    if mismatches:
        worst = max(decoded.batches, key=lambda b: len(b.mismatches))
        summary = f"{len(mismatches)} frame/batch pair(s) decode differently inside a batch; worst batch {worst.batch}: {worst.mismatches[0].reason}"
        return CheckResult(3, name, FAIL, summary, _listed([m.describe() for m in mismatches]), data)
    compared = sum(b.detections for b in decoded.batches)
    if not decoded.detections_alone:
        return CheckResult(3, name, SKIP, f"no frame has a face at {thresholds}: nothing to compare "
                           "(pass --images with faces or lower --det-thresh)", data=data)  # fmt: skip
    box = max(b.max_box_diff for b in decoded.batches)
    lm = max(b.max_landmark_diff for b in decoded.batches)
    summary = (f"every frame's detections are the same alone and in a batch: {compared} compared, {thresholds}; "
               f"max box diff {box:.3g} px, landmarks {lm:.3g} px")  # fmt: skip
    return CheckResult(3, name, PASS, summary, [b.describe() for b in decoded.batches], data)


def _reference_check(result: ReferenceResult | None) -> CheckResult:
    name = "reference parity"
    if result is None:
        return CheckResult(4, name, SKIP, "no reference given (--reference torch for our artifacts, or --reference FILE)")
    data = {"reference": result.description, "notes": result.notes, "reports": [r.to_dict() for r in result.reports]}
    details = [r.summary() for r in result.reports] + result.notes
    failed = [r for r in result.reports if not r.passed]
    if failed:
        return CheckResult(4, name, FAIL, f"differs from {result.description}: {failed[0].summary()}", _listed(details), data)
    worst = max(r.max_abs_diff for r in result.reports)
    sizes = ", ".join(r.label for r in result.reports)
    cosines = [d.min_cosine for r in result.reports for d in r.diffs if d.min_cosine is not None]
    cosine = f", min cosine {min(cosines):.9f}" if cosines else ""
    return CheckResult(4, name, PASS, f"matches {result.description} at {sizes}: max abs diff {worst:.3g}{cosine}", details, data)


def _per_batch_maxima(report: IndependenceReport) -> list[SliceDiff]:
    best: dict[int, SliceDiff] = {}
    for d in report.diffs:
        if d.batch not in best or d.max_abs_diff > best[d.batch].max_abs_diff:
            best[d.batch] = d
    return [best[n] for n in sorted(best)]


def verify_model(path: Path, options: VerifyOptions | None = None) -> VerifyReport:
    options = options or VerifyOptions()
    if not options.batch_sizes or min(options.batch_sizes) < 1:
        raise SpecError("batch sizes must be positive integers, e.g. 1,2,7,32")
    started = time.perf_counter()
    path = Path(path)
    target = target_from_onnx(path, options.embedder, options.size)
    report = VerifyReport(
        model=path.name, sha256=target.sha256, family=target.family, spec_source=target.source,
        input=f"{target.spec.input.name} {list(target.spec.input.dims)}", notes=list(target.notes),
    )  # fmt: skip
    with step("lint the graph: where does the batch axis go?"):
        findings = io_findings(target.model) + lint_graph(target.model)
    frames = verification_frames(target, max(max(options.batch_sizes), 3), options.photos, options.seed)
    input_name = target.spec.input.name
    input_fixed = isinstance(io_dims(target.model)[input_name][0], int)
    with tempfile.TemporaryDirectory(prefix="facebatch-verify-") as tmp:
        run_path = path
        runnable = target.model
        if input_fixed:
            runnable = relaxed_batch(target.model)
            run_path = Path(tmp) / "relaxed.onnx"
            onnx.save(runnable, str(run_path))
        reference = None
        if options.reference is not None:
            reference = compare_with_reference(target, run_path, frames, options.reference, options.batch_sizes, options.photos)
        report.checks.append(_reference_check(reference))
        decoded = None
        if target.family == "scrfd" and target.layout is not None:
            decoded = DecodedIndependence(target.layout, target.input_size, options.atol, options.det_thresh, options.nms_thresh)
        independence = verify_batch_independence(run_path, input_name, frames, options.batch_sizes, options.atol, decoded)
        report.checks.append(_independence_check(independence, input_fixed))
        report.checks.append(_layout_check(findings, independence))
        decoded_check = _decoded_check(decoded, target)
        report.checks.append(decoded_check)
        if independence.passed and not decoded_check.failed:
            report.checks.append(CheckResult(5, "localisation", SKIP, "frames do not mix: nothing to localise"))
        else:
            with step("localise: compare every intermediate tensor per frame"):
                try:
                    mixes, folds = localise(runnable, input_name, frames, findings, options.atol)
                except Exception as exc:  # the graph may not run at batch > 1 at all
                    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                    report.checks.append(CheckResult(5, "localisation", FAIL, f"could not run the graph at batch 3: {first}"))
                    mixes = folds = None
                else:
                    report.checks.append(_localisation_check(mixes, folds))
    report.checks.append(_lint_check(findings))
    report.checks.sort(key=lambda c: c.number)
    report.environment = environment()
    report.seconds = time.perf_counter() - started
    return report


def _localisation_check(mixes, folds) -> CheckResult:  # noqa: ANN001 - Culprit | None
    found = [c for c in (mixes, folds) if c is not None]
    if not found:
        return CheckResult(5, "localisation", FAIL, "frames differ at the outputs but no single node could be named")
    main = mixes or folds
    details = [c.describe() for c in found]
    return CheckResult(5, "localisation", FAIL, f"first node: {main.describe()}", details, {"culprits": [c.to_dict() for c in found]})
