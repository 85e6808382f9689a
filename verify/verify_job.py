"""``run_checks``: every check on one ONNX file, collected into a ``VerifyReport`` (the verify
command's use case, ``facebatch.workflows.verify``, and every workflow that proves an artifact run it).

Order: static checks first (6 lint, the static half of 2 layout), then for each input size:
parity against a reference (4, so a bad reference fails fast), batch independence (1) on
distinct frames with the decoded detections of the same runs (3) and the dynamic half of 2,
then localisation (5) when frames mixed. A file whose batch is fixed to 1 is judged as users
would batch it: the checks run on a copy with the batch made symbolic, and check 2 fails for
the fixed axis itself. A graph with a symbolic input size is checked at its export (or
given) size and at a non-square one, since people run it at both.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.configs.embedder import EmbedderDescription
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.precision import independence_atol
from facebatch.core.environment import environment, int8_cpu_class
from facebatch.core.errors import EngineError, SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.core.progress import step
from facebatch.engines.pipeline.defaults import DEFAULT_FRAME_SEED
from facebatch.engines.pipeline.preprocess import frame_sources, model_frames
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH, check_thresholds
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeIntermediateRunner, OnnxRuntimeRunner
from facebatch.verify.check_results import (
    decoded_check,
    independence_check,
    layout_check,
    lint_check,
    localisation_check,
    reference_check,
)
from facebatch.verify.decoded import DecodedIndependence
from facebatch.verify.independence import DEFAULT_BATCH_SIZES, verify_batch_independence
from facebatch.verify.layout import io_findings
from facebatch.verify.lint import Finding, lint_graph, relaxed_batch
from facebatch.verify.localize import LOCALISATION_FRAMES, localise
from facebatch.verify.reference import Reference, ReferenceFactory, compare_with_reference, parity_batch_sizes
from facebatch.verify.report import FAIL, NA, CheckResult, VerifyReport, size_text
from facebatch.verify.sizes import check_sizes, square_note


@dataclass
class VerifyOptions:
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    photos: Sequence[Path] = ()
    seed: int = DEFAULT_FRAME_SEED
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
        check_verify_values(self.batch_sizes, self.det_thresh, self.nms_thresh)


def check_verify_values(batch_sizes: Sequence[int], det_thresh: float, nms_thresh: float) -> None:
    """What the checks cannot run with, refused before any work (commands that write first call it first)."""
    if not batch_sizes or min(batch_sizes) < 1:
        raise SpecError("batch sizes must be positive integers, e.g. 1,2,7,32", field="batch_sizes")
    if max(batch_sizes) < 2:
        raise SpecError(
            "check 1 compares each frame alone with the same frame inside a batch: "
            "give at least one batch size of 2 or more, e.g. 1,2,7,32",
            field="batch_sizes",
        )
    check_thresholds(det_thresh, nms_thresh)


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
    checks.append(reference_check(result))
    head = target.spec.head
    atol = options.independence_atol(target)
    decoded = None if head is None else DecodedIndependence(head, size, atol, options.det_thresh, options.nms_thresh)
    independence = verify_batch_independence(runner, frames, options.batch_sizes, atol, decoded)
    checks.append(independence_check(independence, relaxed))
    checks.append(layout_check(findings, independence))
    decoded_result = decoded_check(decoded, target)
    checks.append(decoded_result)
    if independence.passed and not decoded_result.failed:
        checks.append(CheckResult(5, "localisation", NA, "frames do not mix: nothing to localise"))
    else:
        checks.append(_localisation(target, frames, findings, atol))
    return checks


def _localisation(target: ModelFile, frames: np.ndarray, findings: list[Finding], atol: float) -> CheckResult:
    """Check 5, when frames mixed: the first node whose tensors differ per frame."""
    with step("localise: compare every intermediate tensor per frame"):
        try:
            with OnnxRuntimeIntermediateRunner(relaxed_batch(target.model), label=target.path.name) as exposed:
                culprits = localise(exposed, target.model, frames, findings, atol)
        except EngineError as exc:  # the graph may not run at batch > 1 at all
            return CheckResult(
                5, "localisation", FAIL, f"could not run the graph at batch {LOCALISATION_FRAMES}: {exc}"
            )
    return localisation_check(culprits)


def _cpu_class_note(target: ModelFile) -> list[str]:
    """An INT8 file judged on another CPU class: integer kernels differ, so its accuracy is re-checked here."""
    made_on, here = target.int8_cpu_class, int8_cpu_class()
    if made_on is None or made_on == here:
        return []
    return [
        f"{target.path.name} was quantised and judged on a {made_on} CPU; this one is {here}, whose integer kernels "
        "differ: check 4 against its FP32 source judges it here (a release check also re-runs its accuracy gate)"
    ]


def _new_report(
    target: ModelFile, reference: Reference | None, sizes: list[tuple[int, int]], options: VerifyOptions
) -> VerifyReport:
    """The report before any check ran: what is checked, at which sizes, on which frames, with what."""
    count = max(max(options.batch_sizes), LOCALISATION_FRAMES)
    return VerifyReport(
        model=target.path.name,
        sha256=target.sha256,
        family=target.family.value,
        precision=target.spec.precision.value,
        spec_source=target.source,
        input=f"{target.spec.input.name} {list(target.spec.input.dims)}",
        sizes=[size_text(s) for s in sizes],
        frames=frame_sources(count, options.photos, options.seed),
        strict=options.strict,
        notes=list(target.notes) + square_note(target, reference, sizes) + _cpu_class_note(target),
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


def run_checks(path: Path, options: VerifyOptions | None = None) -> VerifyReport:
    """The six checks on the ONNX file at ``path``, as ``options`` say; ``report.passed`` is the verdict."""
    options = options or VerifyOptions()
    options.check()
    started = time.perf_counter()
    path = Path(path)
    target = read_model_file(path, options.embedder, options.sizes[0] if options.sizes else None)
    reference = options.reference(target, options.photos) if options.reference is not None else None
    sizes = check_sizes(target, options.sizes, reference)
    report = _new_report(target, reference, sizes, options)
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
    report.checks.append(lint_check(findings))
    report.checks.sort(key=lambda c: c.number)
    report.environment = environment()
    report.seconds = time.perf_counter() - started
    return report
