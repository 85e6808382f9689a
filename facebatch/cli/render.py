"""How the commands show their results: rich tables on the terminal, reports written to
files (or standard output for '-'). Nothing here decides anything."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facebatch.cli.arguments import STDOUT, reports_to_stdout
from facebatch.cli.terminal import literal
from facebatch.core.words import counted, natural_key, percent

if TYPE_CHECKING:
    from facebatch.engines.bench.pipeline_report import PipelineBenchReport
    from facebatch.engines.bench.report import BenchReport
    from facebatch.engines.bench.triton_report import TritonBenchReport
    from facebatch.engines.pipeline.image_faces import ImageFaces, StageTimes
    from facebatch.engines.triton.repository import TritonRepository
    from facebatch.exporter.export_job import ExportResult
    from facebatch.exporter.models.catalog import ArcFaceEntry, ScrfdEntry
    from facebatch.verify.report import VerifyReport
    from facebatch.workflows.quantize import QuantizeResult

STATUS_COLOURS = {"pass": "green", "fail": "red", "skip": "yellow", "n/a": "dim"}


def console_for(args: argparse.Namespace) -> Console:
    """Tables go to standard output, unless a report does (``--json -``): then to stderr."""
    to_stderr = reports_to_stdout(args)
    stream = sys.stderr if to_stderr else sys.stdout
    return Console(
        file=stream, highlight=False, width=None if stream.isatty() else 120
    )  # pipes and CI logs: no truncation


def show_export(console: Console, result: ExportResult) -> None:
    spec = result.spec
    table = Table(title=f"exported {spec.name}", show_header=False, title_justify="left")
    table.add_row("artifact", str(result.onnx_path))
    table.add_row("sidecar", str(result.sidecar_path))
    table.add_row("input", f"{spec.input.name} {list(spec.input.dims)}")
    table.add_row("outputs", ", ".join(f"{t.name} {list(t.dims)}" for t in spec.outputs))
    table.add_row("weights", result.weights.describe())
    if result.weights.proof is not None:
        table.add_row("import proof", result.weights.proof.summary())
    if result.parity_gate is not None:
        gate = f"≤ {result.parity_gate.atol:.3g} (seeded)"
    else:
        gate = "≤ " + "; ".join(dict.fromkeys(t.tolerance_text() for t in spec.outputs))
    rows = []
    for report in result.parity:
        cosines = [d.min_cosine for d in report.diffs if d.min_cosine is not None]
        cosine = f", cos ≥ {min(cosines):.7f}" if cosines else ""
        rows.append(f"{report.label}: {report.max_abs_diff:.2e}{cosine}")
    table.add_row(f"parity torch vs ORT {gate}", "; ".join(rows))
    console.print(table)


def show_catalog(console: Console, scrfd: list[ScrfdEntry], arcface: list[ArcFaceEntry]) -> None:
    table = Table(title="SCRFD variants (insightface configs/scrfd)")
    for column in ("variant", "backbone", "head norm", "landmarks", "params", "default artifact"):
        table.add_column(column)
    for e in scrfd:
        table.add_row(
            e.variant,
            e.backbone,
            e.head_norm,
            "yes" if e.landmarks else "no",
            f"{e.parameters / 1e6:.3f}M",
            e.default_artifact,
        )
    console.print(table)
    table = Table(title="ArcFace networks (arcface_torch backbones; 112x112 input; the short name works too)")
    for column in ("model", "short", "backbone", "layers", "embedding", "params", "default artifact"):
        table.add_column(column)
    for e in arcface:
        table.add_row(
            e.model,
            e.short_name,
            e.backbone,
            "-".join(map(str, e.layers)),
            str(e.embedding_size),
            f"{e.parameters / 1e6:.2f}M",
            e.default_artifact,
        )
    console.print(table)
    console.print(
        "Artifacts with seeded weights (no --weights) are named with _seeded, e.g. scrfd_10g_320_seeded_batch.onnx."
    )


def show_verify(console: Console, report: VerifyReport) -> None:
    strict = " (strict)" if report.strict else ""
    precision = f" ({report.precision})" if report.precision != "fp32" else ""
    table = Table(title=f"facebatch verify {report.model}{precision}: {report.verdict}{strict}", title_justify="left")
    several = len(report.sizes) > 1
    for column in ("#", "check", *(["size"] if several else []), "result", "summary"):
        table.add_column(column)
    for check in report.checks:
        size = [f"{check.size[0]}x{check.size[1]}" if check.size else "all"] if several else []
        status = f"[{STATUS_COLOURS[check.status]}]{check.status.upper()}[/]"
        table.add_row(str(check.number), check.name, *size, status, check.summary)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    for check in report.checks:
        if check.failed and check.details:
            console.print(f"[bold]{check.label}[/bold]")
            for line in check.details:
                console.print(f"  - {line}")


def show_bench(console: Console, report: BenchReport) -> None:
    for artifact in report.artifacts():
        runs = report.runs_of(artifact)
        h, w = runs[0].input_size
        header, rows = report.combined_rows(artifact)
        table = Table(
            title=f"{artifact} ({runs[0].model}, {h}x{w}): FPS = batch / median latency", title_justify="left"
        )
        for column in header:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for run in runs:
            threads = f"{run.threads} threads" if run.threads else "its default threads"
            console.print(
                f"  {run.backend}: {run.provider}, {run.precision}, {threads}; ms/frame "
                + ", ".join(f"{t.batch}: {t.ms_per_frame:.2f}" for t in run.timings)
            )
            shares = [(t.batch, run.share_of_peak(t, report.peak)) for t in run.timings]
            if any(share is not None for _, share in shares):
                console.print("    of CPU peak " + ", ".join(f"{batch}: {percent(share)}" for batch, share in shares))
    if report.peak is not None and any(r.flops_per_frame and r.on_cpu for r in report.runs):
        console.print(f"  of CPU peak: FLOPs per frame × FPS over the {report.peak.describe()}")
    for warning in report.spread_warnings():
        console.print(f"[bold yellow]WARNING[/bold yellow] {warning}")
    for baseline in report.baselines:
        console.print(baseline.line())
    for comparison in report.comparisons:
        for line in comparison.lines():
            console.print(line)


FACE_ROWS = 40  # photos in detect's and embed's table unless --all (the JSON has all)


def show_faces(console: Console, results: list[ImageFaces], times: StageTimes, rows: int | None = FACE_ROWS) -> None:
    """Per photo its faces in natural order (img1, img2, img10; ``rows`` of them, None: all), then totals and
    stage times."""
    table = Table(title="faces", title_justify="left")
    for column in ("photo", "size (HxW)", "faces", "best score", "best box x1,y1,x2,y2"):
        table.add_column(column)
    ordered = sorted(results, key=lambda r: natural_key(r.path))
    for result in ordered if rows is None else ordered[:rows]:
        if not result.ok:
            table.add_row(literal(result.path.name), "", "[red]unreadable[/red]", "", "")
            continue
        assert result.image_size is not None and result.faces is not None
        best = result.best_face()
        box = ",".join(f"{v:.0f}" for v in result.faces.boxes[best]) if best is not None else ""
        score = f"{result.faces.scores[best]:.3f}" if best is not None else ""
        table.add_row(
            literal(result.path.name), f"{result.image_size[0]}x{result.image_size[1]}", str(len(result)), score, box
        )
    console.print(table)
    if rows is not None and len(results) > rows:
        console.print(f"{len(results) - rows} more rows: --all")
    rate = f", {times.images / times.wall:.2f} photos/s" if times.wall > 0 else ""
    stages = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in times.seconds.items())
    console.print(
        f"{counted(times.faces, 'face')} in {counted(times.images, 'photo')} in {times.wall:.2f} s{rate} (busy per stage: {stages})"
    )
    if sum(times.seconds.values()) > times.wall:
        console.print(
            "  (busy seconds are summed over the lanes and reader threads, which run at the same time: "
            "so they add up past the wall time)"
        )


def show_pipeline_bench(console: Console, report: PipelineBenchReport) -> None:
    table = Table(
        title=f"facebatch bench --pipeline: {report.detector} + {report.embedder} on {report.backend}",
        title_justify="left",
    )
    for column in report.HEADER:
        table.add_column(column, justify="right")
    for row in report.rows():
        table.add_row(*row)
    console.print(table)
    bound = report.bound_images_per_second()
    for model in report.models:
        console.print(
            f"  {model.role} alone ({model.artifact}): "
            + ", ".join(f"batch {t.batch}: {t.fps:.1f} FPS" for t in model.timings)
        )
    if bound is not None:
        console.print(f"  the models alone allow {bound:.2f} photos/s for this folder")
    stage_rows = report.stage_rows()
    if stage_rows:
        console.print(
            "  pipeline busy time per pass: "
            + ", ".join(f"{stage} {seconds}s ({share})" for stage, seconds, share, _ in stage_rows)
        )
    if report.peak is not None:
        bf16 = f"; BF16 models over {report.bf16_peak / 1e9:.0f} GFLOP/s in BF16" if report.bf16_peak else ""
        console.print(f"  of peak: FLOPs per second over the {report.peak.describe()}{bf16}")
    for process in report.processes:
        ratio = report.process_ratio_of(process)
        console.print(
            f"  whole process, {process.name}: {process.median_seconds:.2f} s"
            + (f" (insightface's takes {ratio:.2f}×)" if ratio else "")
        )
    for agreement in report.agreements:
        colour = "green" if agreement.passed else "yellow" if not agreement.judged else "red"
        console.print(f"[{colour}]{agreement.summary()}[/{colour}]")
        for problem in agreement.problems[:10]:
            console.print(f"  - {problem}")
    if report.recall:
        console.print(
            "  hand-labelled faces found: "
            + ", ".join(f"{name} {found}/{total}" for name, (found, total) in report.recall.items())
        )
    problem = report.recall_problem()
    if problem:
        console.print(f"[red]lost hand-labelled faces: {problem}[/red]")
    for note in report.notes:
        console.print(f"note: {note}")


def show_repository(console: Console, repository: TritonRepository) -> None:
    table = Table(title=f"Triton repository {repository.path} ({repository.runtime})", title_justify="left")
    for column in ("model", "role", "runtime", "max batch", "preferred", "instances", "from"):
        table.add_column(column)
    for model in repository.models:
        config = model.config
        preferred = (
            ", ".join(map(str, config.dynamic_batching.preferred_batch_sizes)) if config.dynamic_batching else "-"
        )
        table.add_row(
            model.name,
            model.role,
            f"{config.platform or config.backend} ({config.instance_kind})",
            str(config.max_batch_size),
            preferred,
            str(config.instance_count),
            model.source,
        )
    console.print(table)
    bundled = all(m.config.backend == "python" for m in repository.models)  # what nvidia-pytriton's server runs
    serve = (
        f"facebatch serve {repository.path}"
        if bundled
        else f"facebatch serve needs a tritonserver with Triton's {repository.runtime} backend, or these models "
        "written again with --runtime python"
    )
    console.print(
        f"wrote {counted(len(repository.written), 'file')}; {repository.path / 'README.md'} says how to serve and measure it "
        f"({serve})"
    )


def show_triton_bench(console: Console, report: TritonBenchReport) -> None:
    table = Table(
        title=f"facebatch bench --triton: {report.model} at {report.url}, {report.request_batch} row(s) per request",
        title_justify="left",
    )
    for column in report.HEADER:
        table.add_column(column, justify="right")
    for row in report.rows():
        table.add_row(*row)
    console.print(table)
    if report.local is not None:
        console.print(
            f"  local pipeline on the same photos: {report.local.images_per_second:.2f} photos/s ({report.local.backend})"
        )
    for result in report.results:
        console.print(f"  concurrency {result.concurrency}: {result.batching()}")
    for note in report.notes:
        console.print(f"note: {note}")


def show_quantize(console: Console, result: QuantizeResult) -> None:
    colour = "green" if result.passed else "red"
    console.print(f"INT8: {result.quantization.describe()}")
    for line in result.accuracy.lines():
        console.print(f"  {line}")
    for failure in result.failures:
        console.print(f"[{colour}]  failed: {escape(failure)}[/{colour}]")
    speedups = result.speedups()
    if speedups:
        table = Table(title=f"FP32 vs INT8 ({result.source.name})", title_justify="left")
        for column in ("backend", "batch", "FP32 FPS", "INT8 FPS", "INT8 / FP32"):
            table.add_column(column, justify="right")
        for row in speedups:
            table.add_row(
                row["backend"],
                str(row["batch"]),
                f"{row['fp32_fps']:.1f}",
                f"{row['int8_fps']:.1f}",
                f"{row['speedup']:.2f}×",
            )
        console.print(table)
    console.print(f"[{colour}]accuracy gate: {'PASS' if result.passed else 'FAIL'}[/{colour}]")
    for note in result.notes:
        console.print(f"note: {note}")


def write_reports(console: Console, args: argparse.Namespace, report: Any) -> None:
    """--json/--markdown/--junit, each written atomically, or to standard output for '-'."""
    from facebatch.core.atomic import write_text_atomic

    for flag, target, render in (
        ("--json", args.json, report.to_json),
        ("--markdown", args.markdown, report.to_markdown),
        ("--junit", args.junit, getattr(report, "to_junit", None)),
    ):
        if target is None or render is None:
            continue
        if target == STDOUT:
            sys.stdout.write(render())
            sys.stdout.flush()
        else:
            write_text_atomic(target, render(), flag)
            console.print(f"wrote {target}")
