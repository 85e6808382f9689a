"""What ``quantize`` reports: the INT8 model kept, its accuracy against FP32, the recipes tried, verify's
checks, the speed-ups bench measured; as JSON and Markdown, and the refusal when nothing was written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.environment import environment
from facebatch.core.errors import VerificationFailed
from facebatch.core.publish import sidecar_path
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.build.int8 import Int8Quantization
from facebatch.verify.accuracy import DetectorAccuracy, EmbedderAccuracy
from facebatch.verify.report import VerifyReport


@dataclass
class QuantizeResult:
    source: Path
    path: Path
    quantization: Int8Quantization
    calibration_sha256: str
    accuracy: DetectorAccuracy | EmbedderAccuracy
    failures: list[str]  # the gates that failed, in words
    limits: dict[str, float]
    written: bool = False
    tried: list[dict[str, Any]] = field(default_factory=list)  # every recipe tried: its accuracy and failures
    verify: VerifyReport | None = None
    bench: BenchReport | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""
    mixed_searched: bool = False  # QuantizeOptions.mixed was asked for

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def mixed_would_help(self) -> bool:
        """A refused embedder that a mixed search (``QuantizeOptions.mixed``) has not been tried on."""
        return not self.passed and not self.mixed_searched and isinstance(self.accuracy, EmbedderAccuracy)

    def refusal(self) -> VerificationFailed | None:
        """The error the command exits with when the model failed its gate and was not written; None when written."""
        if self.written:
            return None
        mixed = "; a mixed search keeps FP32 only the layers the gate needs" if self.mixed_would_help else ""
        return VerificationFailed(
            f"the INT8 model of {self.source.name} failed its accuracy gate ({'; '.join(self.failures)}); "
            f"nothing was written (force writes it anyway{mixed})",
            field="force",
        )

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def speedups(self) -> list[dict[str, Any]]:
        """INT8 FPS over FP32 FPS per backend and batch size (when bench ran)."""
        if self.bench is None:
            return []
        rows = []
        by_key = {(r.artifact, r.backend): r for r in self.bench.runs}
        for (artifact, backend), run in by_key.items():
            if artifact != self.path.name:
                continue
            fp32 = by_key.get((self.source.name, backend))
            if fp32 is None:
                continue
            for timing in run.timings:
                reference = fp32.timing(timing.batch)
                if reference is not None:
                    rows.append(
                        {
                            "backend": backend,
                            "batch": timing.batch,
                            "fp32_fps": reference.fps,
                            "int8_fps": timing.fps,
                            "speedup": timing.fps / reference.fps,
                        }
                    )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.path.name,
            "source": str(self.source),
            "written": self.written,
            "passed": self.passed,
            "failures": self.failures,
            "limits": self.limits,
            "quantization": self.quantization.describe(),
            "quantized_nodes": self.quantization.quantized_nodes,
            "calibration_sha256": self.calibration_sha256,
            "accuracy": self.accuracy.to_dict(),
            "recipes_tried": self.tried,
            "speedups": self.speedups(),
            "verify": {
                "passed": self.verify.passed,
                "checks": [{"check": c.label, "status": c.status, "summary": c.summary} for c in self.verify.checks],
            }
            if self.verify
            else None,
            "bench": self.bench.to_dict() if self.bench else None,
            "notes": self.notes,
            "seconds": self.seconds,
            "command": self.command,
            "environment": environment(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        verdict = (
            "PASS" if self.passed else ("FAIL (forced: written anyway)" if self.written else "FAIL (nothing written)")
        )
        lines = [f"# facebatch quantize: {self.source.name} → {self.path.name}", ""]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        lines += [
            f"- gate: **{verdict}**",
            f"- {self.quantization.describe()}",
            f"- calibration sha256 {self.calibration_sha256[:16]}…",
            "",
            "## Accuracy against FP32 on the same photos",
            "",
        ]
        if len(self.tried) > 1:
            lines += [
                f"- recipe {t['recipe']}: {t['summary']}"
                + (" (kept)" if t["recipe"] == self.quantization.recipe.name else "")
                for t in self.tried
            ] + [""]
        lines += [f"- {line}" for line in self.accuracy.lines()]
        lines += [f"- limit: {name} {value:g}" for name, value in self.limits.items()]
        lines += [f"- **failed**: {failure}" for failure in self.failures]
        if self.verify is not None:
            lines += ["", "## verify (strict) against the FP32 source, at INT8 tolerances", ""]
            lines += [f"- {c.label}: {c.status.upper()}: {c.summary}" for c in self.verify.checks]
        if isinstance(self.accuracy, DetectorAccuracy) and (self.accuracy.missed or self.accuracy.extra):
            lines += ["", "Faces only one of them finds:", ""]
            lines += [f"- missed by INT8: {m}" for m in self.accuracy.missed[:20]] + [
                f"- extra in INT8: {e}" for e in self.accuracy.extra[:20]
            ]
        speedups = self.speedups()
        if speedups:
            lines += [
                "",
                "## Speed (bench, same run)",
                "",
                "| backend | batch | FP32 FPS | INT8 FPS | INT8 / FP32 |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {r['backend']} | {r['batch']} | {r['fp32_fps']:.1f} | {r['int8_fps']:.1f} | {r['speedup']:.2f}× |"
                for r in speedups
            ]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"
