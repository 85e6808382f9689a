"""``verify`` as a use case: one ``VerifyModelOptions`` in, one ``VerifyReport`` out, the same for the
command line and the Python API.

Everything the gate needs besides the checks themselves (``verify.verify_job.run_checks``) is done
here: the photos are resolved (each a photo or a folder of photos, refused when it names none), a
foreign embedder's description is read from its spec file and single values, check 4's reference is
built (the torch model, another ONNX file, or none), the report files are refused before the slow
work when they would land on an input or cannot be written and are written atomically after it, and
a failing file that ``fix`` can repair says so in the report's notes. ``report.passed`` is the
verdict: a failing one is a report, not an error (the command line exits 1 on it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.configs.embedder import EmbedderDescription, stated_embedder
from facebatch.core.atomic import InputFiles, check_output_file, write_text_atomic
from facebatch.engines.pipeline.photo_files import IMAGE_SUFFIXES, proof_photos
from facebatch.exporter.torch_reference import TORCH, reference_from_argument
from facebatch.verify.report import VerifyReport
from facebatch.verify.verify_job import VerifyOptions, run_checks
from facebatch.workflows.fix import repair_hint

REPORT_FIELDS = ("json", "markdown", "junit")  # the options that name a report file (and its format)
REFERENCE_PARITY = 4  # the one check whose failure no surgery mends: the file disagrees with its reference


@dataclass(frozen=True)
class VerifyModelOptions:
    """What ``verify`` checks and how; every default is the checks' own (``VerifyOptions``)."""

    model: Path
    batch_sizes: Sequence[int] = VerifyOptions.batch_sizes  # check 1 needs one of 2 or more
    sizes: Sequence[tuple[int, int]] | None = None  # None: the graph's own (two for a symbolic size)
    photos: Sequence[Path] = ()  # photos or folders of photos as frames; seeded noise fills the rest
    seed: int = VerifyOptions.seed
    reference: str | Path | None = None  # check 4: "torch" (our artifacts) or another ONNX file; None skips it
    reference_weights: Path | None = None  # the torch reference's weights, where the artifact's sidecar names none
    reference_config: Path | None = None  # the torch reference's SCRFD config .py (custom-trained detectors)
    embedder_spec: Path | None = None  # a foreign embedder's spec (YAML)
    embedder_values: Mapping[str, Any] = field(default_factory=dict)  # spec keys that win over the file's
    det_thresh: float = VerifyOptions.det_thresh
    nms_thresh: float = VerifyOptions.nms_thresh
    strict: bool = VerifyOptions.strict  # the release gate: a skipped check fails
    json: Path | None = None  # report files, written once the checks ran (whatever the verdict)
    markdown: Path | None = None
    junit: Path | None = None
    command: str | None = None  # the command line, recorded in the report

    def __post_init__(self) -> None:
        """Paths may come as text (the Python API): each becomes a ``Path`` ("torch" stays a name)."""
        for name in ("model", "reference_weights", "reference_config", "embedder_spec", *REPORT_FIELDS):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.reference is not None and str(self.reference) != TORCH:
            object.__setattr__(self, "reference", Path(self.reference))
        object.__setattr__(self, "photos", tuple(Path(p) for p in self.photos))
        object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        if self.sizes is not None:
            object.__setattr__(self, "sizes", tuple((int(h), int(w)) for h, w in self.sizes))


def verify(options: VerifyModelOptions) -> VerifyReport:
    """The six checks on ``options.model``, with the reports written where ``options`` say."""
    inputs = _inputs(options)
    for name in REPORT_FIELDS:
        target = getattr(options, name)
        if target is not None:
            check_output_file(target, name, inputs)  # before the slow work
    checks = VerifyOptions(
        batch_sizes=options.batch_sizes,
        photos=proof_photos(options.photos),
        seed=options.seed,
        embedder=_embedder(options),
        sizes=options.sizes,
        reference=reference_from_argument(options.reference, options.reference_weights, options.reference_config),
        det_thresh=options.det_thresh,
        nms_thresh=options.nms_thresh,
        strict=options.strict,
    )
    report = run_checks(options.model, checks)
    report.command = options.command
    if any(c.failed and c.number != REFERENCE_PARITY for c in report.checks):  # a batch fault: fix may mend it
        hint = repair_hint(options.model)
        if hint:
            report.notes.append(hint)
    write_reports(report, options)
    return report


def write_reports(report: VerifyReport, options: VerifyModelOptions) -> None:
    """Each report file ``options`` name, written atomically."""
    renders = {"json": report.to_json, "markdown": report.to_markdown, "junit": report.to_junit}
    for name in REPORT_FIELDS:
        target = getattr(options, name)
        if target is not None:
            write_text_atomic(target, renders[name](), name)


def _embedder(options: VerifyModelOptions) -> EmbedderDescription | None:
    """What the caller says about a foreign embedder, or None where nothing is said."""
    if options.embedder_spec is None and not any(v is not None for v in options.embedder_values.values()):
        return None
    return stated_embedder(options.embedder_spec, options.embedder_values)[0]


def _inputs(options: VerifyModelOptions) -> InputFiles:
    """Everything verify reads: what a report file may never replace."""
    named = [options.model, options.reference_weights, options.reference_config, options.embedder_spec]
    if isinstance(options.reference, Path):
        named.append(options.reference)
    files = [p for p in named if p is not None] + [p for p in options.photos if not p.is_dir()]
    return InputFiles(files, [(p, IMAGE_SUFFIXES) for p in options.photos if p.is_dir()])
