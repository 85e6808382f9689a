"""Each check's result, derived from its own report: the status is the report's verdict and the
summary says why, in one line, with the details (up to ``MAX_LISTED`` lines) and the report's data
for machines."""

from __future__ import annotations

from facebatch.configs.model_file import ModelFile
from facebatch.verify.decoded import DecodedIndependence
from facebatch.verify.independence import IndependenceReport, SliceDiff
from facebatch.verify.lint import Finding
from facebatch.verify.localize import Culprit
from facebatch.verify.reference import ReferenceResult
from facebatch.verify.report import FAIL, NA, PASS, SKIP, CheckResult

MAX_LISTED = 12


def _listed(lines: list[str]) -> list[str]:
    return lines[:MAX_LISTED] + ([f"… and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else [])


def lint_check(findings: list[Finding]) -> CheckResult:
    lint = [f for f in findings if f.check == "lint"]
    if not lint:
        return CheckResult(
            6, "static lint", PASS, "no Reshape/Transpose/Flatten/reduction folds, moves or fixes the batch"
        )
    first = lint[0]
    return CheckResult(
        6,
        "static lint",
        FAIL,
        f"{len(lint)} finding(s); first: {first.op_type} {first.node}: {first.message}",
        _listed([f"{f.op_type} {f.node}: {f.message}" for f in lint]),
        {"findings": [f.to_dict() for f in lint]},
    )


def layout_check(findings: list[Finding], independence: IndependenceReport) -> CheckResult:
    static = [f.message for f in findings if f.check == "layout"]
    dynamic = [d.describe() for d in independence.layout_failures()]
    problems = static + dynamic
    data = {"static": static, "dynamic": dynamic}
    if not problems:
        sizes = ", ".join(map(str, independence.batch_sizes))
        return CheckResult(
            2,
            "layout",
            PASS,
            f"every output's dim 0 equals N for N = {sizes}; batch symbolic; no symbol reused",
            data=data,
        )
    return CheckResult(2, "layout", FAIL, f"{len(problems)} problem(s); first: {problems[0]}", _listed(problems), data)


def independence_check(report: IndependenceReport, relaxed: bool) -> CheckResult:
    """The status is the report's own verdict; the summary says why. Outputs that cannot be
    sliced per frame are counted here and listed by check 2 (layout), not twice."""
    how = " (run with the batch made symbolic, as users do)" if relaxed else ""
    name, data = "batch independence", report.to_dict()
    if report.passed:
        worst = report.worst()
        assert worst is not None
        summary = f"every frame equals its single-frame run: max diff {worst.max_abs_diff:.3g} ({worst.output} @ batch {worst.batch}) < {report.atol:g}{how}"
        return CheckResult(1, name, PASS, summary, [d.describe() for d in _per_batch_maxima(report)], data)
    if report.error:
        return CheckResult(1, name, FAIL, report.error + how, data=data)
    values, layouts = report.value_failures(), report.layout_failures()
    reason = []
    if values:
        v = max(values, key=lambda d: d.max_abs_diff)
        reason.append(
            f"frames differ from their single runs by up to {v.max_abs_diff:.3g} ({v.output} @ batch {v.batch}, frame {v.frame})"
        )
    if layouts:
        reason.append(f"{len(layouts)} output/batch pairs cannot be sliced per frame (check 2 lists them)")
    if not reason:
        reason.append("nothing was compared: the model produced no output to slice per frame")
    return CheckResult(1, name, FAIL, "; ".join(reason) + how, _listed([d.describe() for d in values]), data)


def decoded_check(decoded: DecodedIndependence | None, target: ModelFile) -> CheckResult:
    name = "decoded independence"
    if decoded is None:
        return CheckResult(3, name, NA, f"{target.family.value} model: no decode step (raw outputs are check 1)")
    data = decoded.to_dict()
    if not decoded.passed:
        if decoded.error:
            return CheckResult(3, name, FAIL, f"detections cannot be read per frame: {decoded.error}", data=data)
        mismatches = [m for b in decoded.batches for m in b.mismatches]
        if not mismatches:
            return CheckResult(
                3, name, FAIL, "no batch ran, so no detections could be compared (see check 1)", data=data
            )
        worst = max(decoded.batches, key=lambda b: len(b.mismatches))
        summary = f"{len(mismatches)} frame/batch pair(s) decode differently inside a batch; worst batch {worst.batch}: {worst.mismatches[0].reason}"
        return CheckResult(3, name, FAIL, summary, _listed([m.describe() for m in mismatches]), data)
    thresholds = f"det_thresh {decoded.det_thresh:g}, NMS {decoded.nms_thresh:g}"
    if not decoded.detections_alone:
        return CheckResult(
            3,
            name,
            SKIP,
            f"no frame has a detection at {thresholds}: nothing to compare (give photos that show faces)",
            data=data,
        )
    box = max(b.max_box_diff for b in decoded.batches)
    lm = max(b.max_landmark_diff for b in decoded.batches)
    compared = sum(b.detections for b in decoded.batches)
    summary = (
        f"every frame's detections are the same alone and in a batch: {compared} compared, {thresholds}; "
        f"max box diff {box:.3g} px, landmarks {lm:.3g} px"
    )
    return CheckResult(3, name, PASS, summary, [b.describe() for b in decoded.batches], data)


def reference_check(result: ReferenceResult | None) -> CheckResult:
    name = "reference parity"
    if result is None:
        return CheckResult(
            4, name, SKIP, "no reference given (the torch model for our artifacts, or another ONNX file)"
        )
    data = {
        "reference": result.description,
        "notes": result.notes,
        "reports": [r.to_dict() for r in result.reports],
        "decoded": [d.to_dict() for d in result.decoded],
    }
    details = [r.summary() for r in result.reports] + [d.summary() for d in result.decoded] + result.notes
    if not result.passed:
        failed = [r.summary() for r in result.reports if not r.passed] + [
            d.summary() for d in result.decoded if not d.passed
        ]
        why = failed[0] if failed else "nothing was compared"
        return CheckResult(4, name, FAIL, f"differs from {result.description}: {why}", _listed(details), data)
    worst = max(r.max_abs_diff for r in result.reports)
    sizes = ", ".join(r.label for r in result.reports)
    cosines = [d.min_cosine for r in result.reports for d in r.diffs if d.min_cosine is not None]
    cosine = f", min cosine {min(cosines):.9f}" if cosines else ""
    faces = sum(f.matched for d in result.decoded for f in d.frames)
    decoded = (
        (f"; the same {faces} decoded faces" if faces else "; no decoded face on either side") if result.decoded else ""
    )
    return CheckResult(
        4,
        name,
        PASS,
        f"matches {result.description} at {sizes}: max abs diff {worst:.3g}{cosine}{decoded}",
        details,
        data,
    )


def localisation_check(culprits: tuple[Culprit | None, Culprit | None]) -> CheckResult:
    found = [c for c in culprits if c is not None]
    if not found:
        return CheckResult(5, "localisation", FAIL, "frames differ at the outputs but no single node could be named")
    details = [c.describe() for c in found]
    return CheckResult(
        5,
        "localisation",
        FAIL,
        f"first node: {found[0].describe()}",
        details,
        {"culprits": [c.to_dict() for c in found]},
    )


def _per_batch_maxima(report: IndependenceReport) -> list[SliceDiff]:
    best: dict[int, SliceDiff] = {}
    for d in report.diffs:
        if d.batch not in best or d.max_abs_diff > best[d.batch].max_abs_diff:
            best[d.batch] = d
    return [best[n] for n in sorted(best)]
