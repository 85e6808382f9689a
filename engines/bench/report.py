"""The bench report: one run per artifact and backend, its timings per batch size (raw
samples kept), the comparison with the file an artifact replaces (``--baseline``) and with a
published table (``--compare``), and the environment. JSON keeps everything; Markdown uses
the model card's layout (``| Batch | FPS | ms/frame |``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from facebatch.core.environment import PeakEstimate, describe_environment
from facebatch.core.words import percent
from facebatch.engines.bench.published import Comparison
from facebatch.engines.bench.timing import BatchTiming


@dataclass
class BenchRun:
    """One artifact on one backend."""

    artifact: str  # file name
    model: str  # the spec's name, e.g. scrfd_10g_bnkps
    input_size: tuple[int, int]
    backend: str  # what was asked for, e.g. ort-cpu
    provider: str  # what really ran
    precision: str
    threads: int | None  # as the runtime was set (None: its own default)
    hardware: str  # the CPU or GPU it ran on
    timings: list[BatchTiming] = field(default_factory=list)
    flops_per_frame: float | None = None  # engines/bench/flops.py: Conv/Gemm/MatMul multiply-adds × 2
    on_cpu: bool = True  # whether the CPU's peak is what it runs against
    fp32_flops_per_frame: float = 0.0  # of an INT8 file, the part its recipe keeps in FP32

    def timing(self, batch: int) -> BatchTiming | None:
        return next((t for t in self.timings if t.batch == batch), None)

    def best(self) -> BatchTiming:
        return max(self.timings, key=lambda t: t.fps)

    def fps_by_batch(self) -> dict[int, float]:
        return {t.batch: t.fps for t in self.timings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "model": self.model,
            "input_size": list(self.input_size),
            "backend": self.backend,
            "provider": self.provider,
            "precision": self.precision,
            "threads": self.threads,
            "hardware": self.hardware,
            "timings": [t.to_dict() for t in self.timings],
            "flops_per_frame": self.flops_per_frame,
            "fp32_flops_per_frame": self.fp32_flops_per_frame,
            "on_cpu": self.on_cpu,
        }

    def share_of_peak(self, timing: BatchTiming, peak: PeakEstimate | None) -> float | None:
        """FLOPs per frame × FPS over the CPU's peak for the run's precision (None on a GPU, or where
        either is unknown)."""
        if peak is None or not self.on_cpu or not self.flops_per_frame:
            return None
        return peak.share(self.flops_per_frame, timing.fps, self.precision, self.fp32_flops_per_frame)


@dataclass
class Baseline:
    """A re-export against the batch-1 file it replaces, on one backend, in the same run."""

    baseline: str  # file name, e.g. det_2.5g.onnx
    artifact: str
    backend: str
    baseline_timing: BatchTiming  # batch 1: it cannot batch
    artifact_batch1: BatchTiming  # batch 1, measured in blocks alternating with the baseline's
    artifact_best: BatchTiming  # at the batch size that was fastest in the artifact's run, measured alongside

    @property
    def artifact_batch1_fps(self) -> float:
        return self.artifact_batch1.fps

    @property
    def ratio_batch1(self) -> float:
        return self.artifact_batch1.fps / self.baseline_timing.fps

    @property
    def ratio_best(self) -> float:
        return self.artifact_best.fps / self.baseline_timing.fps

    def line(self) -> str:
        """The comparison in words. Our own FPS figures are the table's (one figure per cell); the ratios come
        from the blocks that alternated with the original, so both ran under the same conditions."""
        return (
            f"{self.artifact} vs {self.baseline} on {self.backend}: the original runs {self.baseline_timing.fps:.1f} FPS at "
            f"batch 1; in blocks alternating with it, ours is {self.ratio_batch1:.3f}× at batch 1 and "
            f"{self.ratio_best:.3f}× at batch {self.artifact_best.batch}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "artifact": self.artifact,
            "backend": self.backend,
            "baseline_batch1": self.baseline_timing.to_dict(),
            "artifact_batch1": self.artifact_batch1.to_dict(),
            "artifact_best": self.artifact_best.to_dict(),
            "ratio_batch1": self.ratio_batch1,
            "ratio_best": self.ratio_best,
        }


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


@dataclass
class BenchReport:
    runs: list[BenchRun] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    peak: PeakEstimate | None = None  # this CPU's FP32 and INT8 ceilings, at the threads the runs were given

    def artifacts(self) -> list[str]:
        return list(dict.fromkeys(r.artifact for r in self.runs))

    def runs_of(self, artifact: str) -> list[BenchRun]:
        return [r for r in self.runs if r.artifact == artifact]

    def spread_warnings(self) -> list[str]:
        """One line per cell whose samples spread more than timing.SPREAD_WARN."""
        found = []
        for run in self.runs:
            found += [f"{run.artifact} on {run.backend}, {w}" for t in run.timings if (w := t.spread_warning())]
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                r.to_dict() | {"share_of_peak": {str(t.batch): r.share_of_peak(t, self.peak) for t in r.timings}}
                for r in self.runs
            ],
            "peak": self.peak.to_dict() if self.peak else None,
            "spread_warnings": self.spread_warnings(),
            "baselines": [b.to_dict() for b in self.baselines],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "options": self.options,
            "command": self.command,
            "environment": self.environment,
            "seconds": self.seconds,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def combined_rows(self, artifact: str) -> tuple[list[str], list[list[str]]]:
        """A column per backend (FPS) and the ratio of each to the first, per batch size."""
        runs = self.runs_of(artifact)
        header = ["Batch"] + [f"{r.backend} FPS" for r in runs] + [f"{r.backend} / {runs[0].backend}" for r in runs[1:]]
        rows = []
        for batch in sorted({t.batch for r in runs for t in r.timings}):
            timings = [r.timing(batch) for r in runs]
            cells = [str(batch)] + [_fmt(t.fps) if t else "–" for t in timings]
            first = timings[0]
            cells += [f"{t.fps / first.fps:.2f}×" if t and first else "–" for t in timings[1:]]
            rows.append(cells)
        return header, rows

    def to_markdown(self) -> str:
        lines = ["# facebatch bench", ""]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        budget = self.options.get("budget", {})
        if budget:
            how = (
                f"{budget['iters']} timed calls"
                if budget.get("iters")
                else f"≥ {budget['seconds']:g} s and ≥ 3 timed calls"
            )
            lines.append(f"- per batch size: {budget['warmup']:g} s warm-up, then {how}; FPS = batch / median latency")
        lines.append(f"- took {self.seconds:.1f} s")
        lines += [f"- **spread**: {w}" for w in self.spread_warnings()]
        for artifact in self.artifacts():
            runs = self.runs_of(artifact)
            h, w = runs[0].input_size
            lines += ["", f"## {artifact} ({runs[0].model}, {h}x{w})", ""]
            if len(runs) > 1:
                header, rows = self.combined_rows(artifact)
                lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
            for run in runs:
                threads = f"{run.threads} threads" if run.threads else "its default threads"
                flops = f", {run.flops_per_frame / 1e9:.2f} GFLOPs per frame" if run.flops_per_frame else ""
                lines += [
                    f"### {run.backend}: {run.provider}, {run.precision}, {threads}{flops}",
                    "",
                    "| Batch | FPS | ms/frame | of CPU peak |",
                    "|---|---|---|---|",
                ]
                lines += [
                    f"| {t.batch} | {_fmt(t.fps)} | {t.ms_per_frame:.2f} | {percent(run.share_of_peak(t, self.peak))} |"
                    for t in run.timings
                ]
                lines += [
                    "",
                    "| Batch | p50 ms | p90 ms | p99 ms | min ms | max ms | calls |",
                    "|---|---|---|---|---|---|---|",
                ]
                for t in run.timings:
                    lat = t.latency
                    lines.append(
                        f"| {t.batch} | {1e3 * lat.p50:.2f} | {1e3 * lat.p90:.2f} | {1e3 * lat.p99:.2f} | {1e3 * lat.min:.2f} | "
                        f"{1e3 * lat.max:.2f} | {len(lat.samples)} |"
                    )
                lines.append("")
        if self.baselines:
            lines += [
                "## Against the files they replace (batch 1 only: those cannot batch; measured in alternating blocks)",
                "",
            ]
            lines += [f"- {b.line()}" for b in self.baselines]
            lines.append("")
        if self.comparisons:
            lines += ["## Against published figures", ""]
            for comparison in self.comparisons:
                lines += [f"    {line}" for line in comparison.lines()] + [""]
        if self.peak is not None and any(r.flops_per_frame and r.on_cpu for r in self.runs):
            lines += [
                f"Of CPU peak: FLOPs per frame × FPS over the {self.peak.describe()}.",
                "",
            ]
        environment = describe_environment(self.environment)
        if environment:
            lines += ["## Environment", ""] + [f"- {line}" for line in environment]
        return "\n".join(lines).rstrip() + "\n"
