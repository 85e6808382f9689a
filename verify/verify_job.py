"""``verify_model``: every check on one ONNX file, collected into a ``VerifyReport``.

Order: static checks first (6 lint, the static half of 2 layout), then for each input size:
parity against a reference (4, so a bad reference fails fast), batch independence (1) on
distinct frames with the decoded detections of the same runs (3) and the dynamic half of 2,
then localisation (5) when frames mixed. A file whose batch is fixed to 1 is judged as users
would batch it: the checks run on a copy with the batch made symbolic, and check 2 fails for
the fixed axis itself. A graph with a symbolic input size is checked at its export (or
given) size and at a non-square one, since people run it at both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.model_file import ModelFile, read_model_file, square_size_allowed
from facebatch.configs.precision import independence_atol
from facebatch.core.environment import environment, int8_cpu_class
from facebatch.core.errors import EngineError, SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.core.progress import step
from facebatch.engines.pipeline.preprocess import frame_sources, model_frames
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeIntermediateRunner, OnnxRuntimeRunner
from facebatch.verify.decoded import DecodedIndependence
from facebatch.verify.independence import (
    DEFAULT_BATCH_SIZES,
    IndependenceReport,
    SliceDiff,
    verify_batch_independence,
)
from facebatch.verify.lint import Finding, io_findings, lint_graph, relaxed_batch
from facebatch.verify.localize import LOCALISATION_FRAMES, Culprit, localise
from facebatch.verify.reference import (
    Reference,
    ReferenceFactory,
    ReferenceResult,
    compare_with_reference,
    parity_batch_sizes,
)
from facebatch.verify.report import FAIL, NA, PASS, SKIP, CheckResult, VerifyReport, size_text

MAX_LISTED = 12


@dataclass
class VerifyOptions:
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    photos: Sequence[Path] = ()
    seed: int = 0
    embedder: EmbedderDescription | None = None
    sizes: Sequence[tuple[int, int]] | None = None  # None: the target's own (two for a symbolic size)
    atol: float | None = None  # check 1; None: the artifact's precision's (configs.precision.independence_atol)
    reference: ReferenceFactory | None = None  # check 4; None skips it
    det_thresh: float = DET_THRESH  # check 3 (SCRFD): the reference pipeline's thresholds
    nms_thresh: float = NMS_THRESH
    strict: bool = False  # the release gate: a skipped check fails

    def independence_atol(self, target: ModelFile) -> float:
        return self.atol if self.atol is not None else independence_atol(target.spec.precision)

    def check(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise SpecError("batch sizes must be positive integers, e.g. 1,2,7,32")
        if max(self.batch_sizes) < 2:
            raise SpecError(
                "check 1 compares each frame alone with the same frame inside a batch: "
                "give at least one batch size of 2 or more, e.g. 1,2,7,32"
            )


def non_square_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """A second size for graphs with a symbolic input size: 320x320 → 320x480; a non-square
    size is turned around."""
    height, width = size
    if height != width:
        return width, height
    return height, math.ceil(width * 1.5 / multiple) * multiple


def second_square_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """A second size for graphs that take square inputs only: half the first, on the stride grid
    (640 → 320)."""
    side = max(multiple, round(size[0] / 2 / multiple) * multiple)
    return side, side


def check_sizes(
    target: ModelFile, sizes: Sequence[tuple[int, int]] | None, reference: Reference | None = None
) -> list[tuple[int, int]]:
    """The input sizes to check at: the given ones, each refused if the graph (or the reference)
    cannot run it; by default the target's own, plus a second one for a symbolic size: non-square,
    or square where either graph names height and width with one symbol."""
    spec = target.spec
    symbol = target.shared_size_symbol or (reference.shared_size_symbol if reference is not None else None)
    if sizes is None:
        if target.fixed_size or spec.family.is_embedder:
            return [spec.input_size]
        if symbol is not None:
            return [spec.input_size, second_square_size(spec.input_size, spec.size_multiple)]
        return [spec.input_size, non_square_size(spec.input_size, spec.size_multiple)]
    sizes = list(dict.fromkeys(tuple(s) for s in sizes))
    if spec.family.is_embedder and len(sizes) > 1:
        raise SpecError(
            f"{target.path.name} is an embedder: it takes one input size, got {', '.join(map(size_text, sizes))}"
        )
    checked = [target.checked_size(size) for size in sizes]
    if reference is not None and reference.shared_size_symbol is not None:
        for size in checked:
            square_size_allowed(f"the reference {reference.name}", reference.shared_size_symbol, size)
    return checked


def _listed(lines: list[str]) -> list[str]:
    return lines[:MAX_LISTED] + ([f"… and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else [])


def _lint_check(findings: list[Finding]) -> CheckResult:
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


def _layout_check(findings: list[Finding], independence: IndependenceReport) -> CheckResult:
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


def _independence_check(report: IndependenceReport, relaxed: bool) -> CheckResult:
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


def _decoded_check(decoded: DecodedIndependence | None, target: ModelFile) -> CheckResult:
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
            f"no frame has a detection at {thresholds}: nothing to compare (pass --images with photos that show faces)",
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


def _reference_check(result: ReferenceResult | None) -> CheckResult:
    name = "reference parity"
    if result is None:
        return CheckResult(
            4, name, SKIP, "no reference given (--reference torch for our artifacts, or --reference FILE)"
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


def _localisation_check(culprits: tuple[Culprit | None, Culprit | None]) -> CheckResult:
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


def _checks_at(
    target: ModelFile,
    runner: Runner,
    size: tuple[int, int],
    reference: Reference | None,
    findings: list[Finding],
    options: VerifyOptions,
    relaxed: bool,
) -> list[CheckResult]:
    """Checks 1–5 at one input size."""
    count = max(max(options.batch_sizes), LOCALISATION_FRAMES)
    frames = model_frames(target, size, count, options.photos, options.seed)
    checks = []
    result = None
    if reference is not None:
        batches = parity_batch_sizes(options.batch_sizes)
        result = compare_with_reference(
            target, runner, frames, reference, batches, size, options.det_thresh, options.nms_thresh
        )
    checks.append(_reference_check(result))
    head = target.spec.head
    atol = options.independence_atol(target)
    decoded = None if head is None else DecodedIndependence(head, size, atol, options.det_thresh, options.nms_thresh)
    independence = verify_batch_independence(runner, frames, options.batch_sizes, atol, decoded)
    checks.append(_independence_check(independence, relaxed))
    checks.append(_layout_check(findings, independence))
    decoded_check = _decoded_check(decoded, target)
    checks.append(decoded_check)
    if independence.passed and not decoded_check.failed:
        checks.append(CheckResult(5, "localisation", NA, "frames do not mix: nothing to localise"))
        return checks
    with step("localise: compare every intermediate tensor per frame"):
        try:
            with OnnxRuntimeIntermediateRunner(relaxed_batch(target.model), label=target.path.name) as exposed:
                culprits = localise(exposed, target.model, frames, findings, atol)
        except EngineError as exc:  # the graph may not run at batch > 1 at all
            checks.append(
                CheckResult(5, "localisation", FAIL, f"could not run the graph at batch {LOCALISATION_FRAMES}: {exc}")
            )
        else:
            checks.append(_localisation_check(culprits))
    return checks


def _cpu_class_note(target: ModelFile) -> list[str]:
    """An INT8 file judged on another CPU class: integer kernels differ, so its accuracy is re-checked here."""
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    if made_on is None or made_on == here:
        return []
    return [
        f"{target.path.name} was quantised and judged on a {made_on} CPU; this one is {here}, whose integer kernels "
        "differ: check 4 against its FP32 source judges it here (release --check also re-runs its accuracy gate)"
    ]


def _square_note(target: ModelFile, reference: Reference | None, sizes: list[tuple[int, int]]) -> list[str]:
    """Say so when a symbol shared by height and width limited the sizes checked."""
    named = [(target.path.name, target.shared_size_symbol)] + (
        [(reference.name, reference.shared_size_symbol)] if reference else []
    )
    for name, symbol in named:
        if symbol is not None and not target.fixed_size:
            return [
                f"{name} names its input height and width with one symbol {symbol!r}: checked at square sizes only "
                f"({', '.join(map(size_text, sizes))})"
            ]
    return []


def verify_model(path: Path, options: VerifyOptions | None = None) -> VerifyReport:
    options = options or VerifyOptions()
    options.check()
    started = time.perf_counter()
    path = Path(path)
    target = read_model_file(path, options.embedder, options.sizes[0] if options.sizes else None)
    reference = options.reference(target, options.photos) if options.reference is not None else None
    sizes = check_sizes(target, options.sizes, reference)
    count = max(max(options.batch_sizes), LOCALISATION_FRAMES)
    report = VerifyReport(
        model=path.name,
        sha256=target.sha256,
        family=target.family.value,
        precision=target.spec.precision.value,
        spec_source=target.source,
        input=f"{target.spec.input.name} {list(target.spec.input.dims)}",
        sizes=[size_text(s) for s in sizes],
        frames=frame_sources(count, options.photos, options.seed),
        strict=options.strict,
        notes=list(target.notes) + _square_note(target, reference, sizes) + _cpu_class_note(target),
        options={
            "batch_sizes": list(options.batch_sizes),
            "sizes": [list(s) for s in sizes],
            "seed": options.seed,
            "photos": [str(p) for p in options.photos],
            "atol": options.independence_atol(target),
            "det_thresh": options.det_thresh,
            "nms_thresh": options.nms_thresh,
            "strict": options.strict,
            "reference": reference.description if reference is not None else None,
        },
    )
    with step("lint the graph: where does the batch axis go?"):
        findings = io_findings(target.model) + lint_graph(target.model)
    relaxed = isinstance(io_dims(target.model)[target.spec.input.name][0], int)
    runnable = relaxed_batch(target.model) if relaxed else path
    with OnnxRuntimeRunner(runnable, label=path.name) as runner:
        for size in sizes:
            checks = _checks_at(target, runner, size, reference, findings, options, relaxed)
            for check in checks:
                check.size = size if len(sizes) > 1 else None
            report.checks += checks
    report.checks.append(_lint_check(findings))
    report.checks.sort(key=lambda c: c.number)
    report.environment = environment()
    report.seconds = time.perf_counter() - started
    return report
