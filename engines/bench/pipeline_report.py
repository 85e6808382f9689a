"""The report of ``facebatch bench --pipeline``: photos per second and faces per second of the
batched pipeline, the per-image loop and insightface's ``FaceAnalysis`` over the same folder
in one run, the ratios, where the pipeline's time goes, the models alone, and whether the
runs found the same faces."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from facebatch.core.environment import PeakEstimate, describe_environment
from facebatch.core.words import counted, percent
from facebatch.engines.bench.process_time import ProcessTime
from facebatch.engines.bench.timing import BatchTiming
from facebatch.engines.evaluation.agreement import Agreement
from facebatch.engines.pipeline.image_faces import STAGE_WORDS, STAGES

OURS = "facebatch pipeline"
LOOP = "per-image loop"
INSIGHTFACE = "insightface FaceAnalysis"


@dataclass
class Contender:
    """One way of running the folder: the seconds of each timed pass over it."""

    name: str
    description: str
    images: int  # photos per pass
    faces: int  # faces found per pass
    pass_seconds: list[float] = field(default_factory=list)
    stages: dict[str, float] | None = None  # busy seconds per stage, per pass (the pipeline only)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.pass_seconds)

    @property
    def images_per_second(self) -> float:
        return self.images / self.median_seconds

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.median_seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "images": self.images,
            "faces": self.faces,
            "pass_seconds": self.pass_seconds,
            "median_seconds": self.median_seconds,
            "images_per_second": self.images_per_second,
            "faces_per_second": self.faces_per_second,
            "stages_per_pass": self.stages,
        }


@dataclass
class ModelOnly:
    """One model alone on the same runner, at the batch size the pipeline gives it and at 1."""

    role: str  # detector / embedder
    artifact: str
    timings: list[BatchTiming] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "artifact": self.artifact, "timings": [t.to_dict() for t in self.timings]}


@dataclass
class PipelineBenchReport:
    options: dict[str, Any]
    environment: dict[str, Any]
    detector: str
    embedder: str
    backend: str
    provider: str
    contenders: list[Contender] = field(default_factory=list)
    models: list[ModelOnly] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""
    processes: list[ProcessTime] = field(default_factory=list)  # whole-process runs, start-up included
    peak: PeakEstimate | None = None  # this CPU's FP32 and INT8 ceilings at the runs' threads
    flops: dict[str, float] = field(default_factory=dict)  # FLOPs per frame: detector, embedder
    recall: dict[str, tuple[int, int]] = field(default_factory=dict)  # per run: labelled faces found, labelled
    recall_reference: str | None = None  # the run whose labelled recall ours must keep (when unlike it)
    precisions: dict[str, dict[str, str]] = field(default_factory=dict)  # per run: detector's, embedder's (else fp32)
    fp32_flops: dict[str, dict[str, float]] = field(default_factory=dict)  # per run: of an INT8 model, what stays FP32
    bf16_peak: float | None = None  # ops/s of OpenVINO's 1024² product in BF16: what BF16 models are set against

    def contender(self, name: str) -> Contender | None:
        return next((c for c in self.contenders if c.name == name), None)

    def ratio(self, name: str) -> float | None:
        """The pipeline's photos per second over ``name``'s."""
        ours, other = self.contender(OURS), self.contender(name)
        if ours is None or other is None or other is ours:
            return None
        return ours.images_per_second / other.images_per_second

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.agreements if a.judged) and self.recall_problem() is None

    def recall_problem(self) -> str | None:
        """Where ours runs other models or another decode than the reference: the labelled faces it lost."""
        if self.recall_reference is None or OURS not in self.recall or self.recall_reference not in self.recall:
            return None
        (found, total), (kept, _) = self.recall[OURS], self.recall[self.recall_reference]
        if found >= kept:
            return None
        return f"{OURS} finds {found}/{total} hand-labelled faces, {self.recall_reference} {kept}/{total}"

    def share_of_peak(self, contender: Contender) -> float | None:
        """How much of the CPU the contender's arithmetic uses: detector FLOPs per photo × photos/s and
        embedder FLOPs per face × faces/s, each over the ceiling of the precision that model runs in
        (an INT8 detector against the 8-bit product, an FP32 embedder against the FP32 peak)."""
        if self.peak is None or len(self.flops) < 2:  # both models counted
            return None
        precisions, kept = self.precisions.get(contender.name, {}), self.fp32_flops.get(contender.name, {})
        rates = {"detector": contender.images_per_second, "embedder": contender.faces_per_second}
        shares = [
            self._share(role, rate, precisions.get(role, "fp32"), kept.get(role, 0.0)) for role, rate in rates.items()
        ]
        return None if None in shares else sum(shares)

    def _share(self, role: str, rate: float, precision: str, kept: float) -> float | None:
        """One model's share of the ceiling of its precision: BF16 against the measured BF16 product (None where
        it was not measured: no ceiling is guessed), the others as ``PeakEstimate.share`` sets them."""
        assert self.peak is not None
        if precision == "bf16":
            return self.flops[role] * rate / self.bf16_peak if self.bf16_peak else None
        return self.peak.share(self.flops[role], rate, precision, kept)

    def process_ratio_of(self, process: ProcessTime) -> float | None:
        """For one of our whole-process runs, insightface's over the same photos ÷ it (None for theirs)."""
        return self.process_ratio(process.label) if process.ours else None

    def process_ratio(self, label: str) -> float | None:
        """insightface's whole-process seconds over ours, for the folder or the first photo (``label``)."""
        times = {p.name: p.median_seconds for p in self.processes}
        ours, theirs = times.get(f"facebatch embed ({label})"), times.get(f"insightface script ({label})")
        return theirs / ours if ours and theirs else None

    def bound_images_per_second(self) -> float | None:
        """What the models alone allow: one detector frame plus the folder's faces per photo at
        the embedder's batch, at the model-only speeds (the pipeline cannot beat this)."""
        ours = self.contender(OURS)
        by_role = {m.role: m for m in self.models}
        if ours is None or "detector" not in by_role or "embedder" not in by_role or not by_role["detector"].timings:
            return None
        det, emb = by_role["detector"].timings[0], by_role["embedder"].timings[0]
        seconds = 1.0 / det.fps + (ours.faces / ours.images) / emb.fps
        return 1.0 / seconds

    def rows(self) -> list[list[str]]:
        rows = []
        for c in self.contenders:
            ratio = self.ratio(c.name)
            rows.append(
                [
                    c.name,
                    f"{c.images_per_second:.2f}",
                    f"{c.faces_per_second:.1f}",
                    f"{c.median_seconds:.2f}",
                    f"{min(c.pass_seconds):.2f}–{max(c.pass_seconds):.2f}",
                    "1.00×" if c.name == OURS else f"{ratio:.2f}×" if ratio else "–",
                    percent(self.share_of_peak(c)),
                ]
            )
        return rows

    HEADER = ["run", "images/s", "faces/s", "median pass s", "passes min–max s", "pipeline ×", "of peak"]

    def stage_rows(self) -> list[list[str]]:
        ours = self.contender(OURS)
        if ours is None or not ours.stages:
            return []
        wall = ours.median_seconds
        return [
            [stage, f"{ours.stages[stage]:.3f}", f"{100 * ours.stages[stage] / wall:.0f} %", STAGE_WORDS[stage]]
            for stage in STAGES
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "embedder": self.embedder,
            "backend": self.backend,
            "provider": self.provider,
            "contenders": [c.to_dict() for c in self.contenders],
            "ratios": {c.name: self.ratio(c.name) for c in self.contenders if c.name != OURS},
            "model_only": [m.to_dict() for m in self.models],
            "bound_images_per_second": self.bound_images_per_second(),
            "agreements": [a.to_dict() for a in self.agreements],
            "recall": {name: {"found": f, "labelled": t} for name, (f, t) in self.recall.items()},
            "recall_reference": self.recall_reference,
            "recall_problem": self.recall_problem(),
            "processes": [p.to_dict() for p in self.processes],
            "process_ratios": {label: self.process_ratio(label) for label in ("folder", "first photo")},
            "flops_per_frame": self.flops,
            "peak": self.peak.to_dict() if self.peak else None,
            "bf16_peak": self.bf16_peak,
            "share_of_peak": {c.name: self.share_of_peak(c) for c in self.contenders},
            "precisions": self.precisions,
            "fp32_flops": self.fp32_flops,
            "passed": self.passed,
            "notes": self.notes,
            "options": self.options,
            "environment": self.environment,
            "seconds": self.seconds,
            "command": self.command,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = self._summary_lines() + self._model_lines() + self._process_lines() + self._stage_lines()
        lines += self._agreement_lines()
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        environment = describe_environment(self.environment)
        if environment:
            lines += ["", "## Environment", ""] + [f"- {line}" for line in environment]
        return "\n".join(lines).rstrip() + "\n"

    def _summary_lines(self) -> list[str]:
        """The title, what ran, and the throughput table with each run in words."""
        ours = self.contender(OURS)
        lines = ["# facebatch bench --pipeline", ""]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        lines.append(f"- detector {self.detector}, embedder {self.embedder}, backend {self.backend} ({self.provider})")
        if ours is not None:
            passes = counted(len(ours.pass_seconds), "timed pass", "timed passes")
            lines.append(
                f"- {ours.images} photos and {ours.faces} faces per pass; {passes} per run, "
                "the runs taking turns; speeds from the median pass"
            )
        lines += [f"- took {self.seconds:.1f} s", "", "## Throughput", ""]
        lines += ["| " + " | ".join(self.HEADER) + " |", "|" + "---|" * len(self.HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return lines + [""] + [f"- **{c.name}**: {c.description}" for c in self.contenders]

    def _model_lines(self) -> list[str]:
        """The models alone, what they allow together, and the arithmetic against the CPU's peak."""
        lines = []
        bound = self.bound_images_per_second()
        if self.models:
            lines += [
                "",
                "## The models alone (same runners)",
                "",
                "| model | artifact | batch | FPS | ms/frame | p50 ms | p90 ms | p99 ms |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for m in self.models:
                for t in m.timings:
                    lat = t.latency
                    lines.append(
                        f"| {m.role} | {m.artifact} | {t.batch} | {t.fps:.1f} | {t.ms_per_frame:.2f} | {1e3 * lat.p50:.2f} | "
                        f"{1e3 * lat.p90:.2f} | {1e3 * lat.p99:.2f} |"
                    )
            if bound is not None:
                lines += [
                    "",
                    f"The models alone allow {bound:.2f} photos/s for this folder's faces per photo (one detector frame plus its "
                    "faces through the embedder, at the batch sizes above).",
                ]
        if self.peak is not None and len(self.flops) == 2:
            lines += [
                "",
                f"Of peak: each model's operations per second, over the ceiling of the precision it runs in (detector {self.flops['detector'] / 1e9:.2f} GFLOPs per photo, "
                f"embedder {self.flops['embedder'] / 1e9:.3f} per face) over the {self.peak.describe()}"
                + (
                    f"; BF16 models against the {self.bf16_peak / 1e9:.0f} GFLOP/s a 1024² product in BF16 measured "
                    "on OpenVINO"
                    if self.bf16_peak
                    else ""
                )
                + ".",
            ]
        return lines

    def _process_lines(self) -> list[str]:
        if not self.processes:
            return []
        lines = [
            "",
            "## Whole process (fresh interpreter, start-up included)",
            "",
            "| command | photos | median s | runs s | insightface ÷ ours |",
            "|---|---|---|---|---|",
        ]
        for p in self.processes:
            ratio = self.process_ratio_of(p)
            lines.append(
                f"| {p.name} | {p.photos} | {p.median_seconds:.2f} | {', '.join(f'{s:.2f}' for s in p.seconds)} | "
                f"{f'{ratio:.2f}×' if ratio else ''} |"
            )
        return lines

    def _stage_lines(self) -> list[str]:
        stage_rows = self.stage_rows()
        if not stage_rows:
            return []
        lines = [
            "",
            "## Where the pipeline's time goes (busy seconds per pass; the readers run beside the runtimes)",
            "",
            "| stage | s | of the wall time | what |",
            "|---|---|---|---|",
        ]
        return lines + ["| " + " | ".join(row) + " |" for row in stage_rows]

    def _agreement_lines(self) -> list[str]:
        """Whether the runs found the same faces, and the hand-labelled ones."""
        lines = []
        if self.agreements:
            lines += ["", "## Same faces?", ""] + [f"- {a.summary()}" for a in self.agreements]
            for a in self.agreements:
                lines += [f"  - {problem}" for problem in a.problems[:20]]
        if self.recall:
            lines += ["", "## Hand-labelled faces found (IoU ≥ 0.5)", ""]
            lines += [f"- {name}: {found}/{total}" for name, (found, total) in self.recall.items()]
            problem = self.recall_problem()
            if problem:
                lines.append(f"- **lost labelled faces**: {problem}")
        return lines
