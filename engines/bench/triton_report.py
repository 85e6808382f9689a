"""The report of ``facebatch bench --triton``: per concurrency level, the served rows per
second, requests per second and p50/p90/p99 latency seen by the clients, Triton's batching
counts per model, and the local pipeline on the same photos when it ran."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from facebatch.core.environment import describe_environment
from facebatch.engines.bench.timing import Latency


@dataclass
class ConcurrencyResult:
    concurrency: int
    latency: Latency  # seconds per request, as the clients saw it
    requests: int  # finished inside the window
    rows: int  # photos or frames those requests carried
    seconds: float  # the window
    statistics: dict[str, dict[str, int]] = field(default_factory=dict)  # Triton's counts in the window, per model

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def batching(self) -> str:
        """e.g. ``face_pipeline 96 requests in 31 runs; scrfd 31 in 31`` (the window's counts)."""
        parts = []
        for model, counts in sorted(self.statistics.items()):
            runs = counts.get("execution_count", 0)
            if runs:
                parts.append(
                    f"{model}: {counts.get('requests', 0)} requests, {counts.get('inference_count', 0)} rows in {runs} runs "
                    f"({counts.get('inference_count', 0) / runs:.1f} rows/run)"
                )
        return "; ".join(parts) or "-"

    def to_dict(self) -> dict[str, Any]:
        lat = self.latency
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rows": self.rows,
            "seconds": self.seconds,
            "rows_per_second": self.rows_per_second,
            "requests_per_second": self.requests_per_second,
            "latency_ms": {
                "p50": 1e3 * lat.p50,
                "p90": 1e3 * lat.p90,
                "p99": 1e3 * lat.p99,
                "min": 1e3 * lat.min,
                "max": 1e3 * lat.max,
                "mean": 1e3 * lat.mean,
            },
            "samples_s": list(lat.samples),
            "triton_statistics": self.statistics,
        }


@dataclass
class LocalPipeline:
    """The same photos through ``facebatch``'s pipeline in this process: the served/local ratio."""

    detector: str
    embedder: str
    backend: str
    provider: str
    images: int
    faces: int
    pass_seconds: list[float]

    @property
    def images_per_second(self) -> float:
        return self.images / statistics.median(self.pass_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "embedder": self.embedder,
            "backend": self.backend,
            "provider": self.provider,
            "images": self.images,
            "faces": self.faces,
            "pass_seconds": self.pass_seconds,
            "images_per_second": self.images_per_second,
        }


@dataclass
class TritonBenchReport:
    url: str
    model: str
    inputs: list[str]
    max_batch_size: int
    request_batch: int
    photos: int
    options: dict[str, Any]
    environment: dict[str, Any]
    results: list[ConcurrencyResult] = field(default_factory=list)
    local: LocalPipeline | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""

    def ratio(self, result: ConcurrencyResult) -> float | None:
        """Served rows per second over the local pipeline's photos per second."""
        return result.rows_per_second / self.local.images_per_second if self.local is not None else None

    def best(self) -> ConcurrencyResult:
        return max(self.results, key=lambda r: r.rows_per_second)

    HEADER = ["concurrency", "rows/s", "requests/s", "p50 ms", "p90 ms", "p99 ms", "requests", "served / local"]

    def rows(self) -> list[list[str]]:
        table = []
        for r in self.results:
            lat, ratio = r.latency, self.ratio(r)
            table.append(
                [
                    str(r.concurrency),
                    f"{r.rows_per_second:.2f}",
                    f"{r.requests_per_second:.2f}",
                    f"{1e3 * lat.p50:.1f}",
                    f"{1e3 * lat.p90:.1f}",
                    f"{1e3 * lat.p99:.1f}",
                    str(r.requests),
                    f"{ratio:.2f}×" if ratio else "–",
                ]
            )
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "inputs": self.inputs,
            "max_batch_size": self.max_batch_size,
            "request_batch": self.request_batch,
            "photos": self.photos,
            "results": [r.to_dict() for r in self.results],
            "local_pipeline": self.local.to_dict() if self.local else None,
            "ratios": {str(r.concurrency): self.ratio(r) for r in self.results} if self.local else None,
            "notes": self.notes,
            "options": self.options,
            "environment": self.environment,
            "seconds": self.seconds,
            "command": self.command,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = ["# facebatch bench --triton", ""]
        if self.command:
            lines.append(f"- command: `{self.command}`")
        lines.append(
            f"- model `{self.model}` at {self.url}; inputs {', '.join(self.inputs)}; max batch {self.max_batch_size}"
        )
        what = f"{self.photos} photos cycled" if self.photos else "seeded noise frames"
        lines.append(
            f"- {self.request_batch} row(s) per request ({what}); per level a {self.options.get('warmup_s')} s warm-up, then a "
            f"{self.options.get('seconds')} s window; a request counts when it starts and ends inside it"
        )
        lines += [
            f"- took {self.seconds:.1f} s",
            "",
            "## Throughput and latency per concurrency (client side)",
            "",
            "| " + " | ".join(self.HEADER) + " |",
            "|" + "---|" * len(self.HEADER),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        if self.local is not None:
            local = self.local
            lines += [
                "",
                f"Local pipeline on the same {local.images} photos ({local.faces} faces): {local.images_per_second:.2f} photos/s "
                f"({local.detector} + {local.embedder} on {local.backend}, {local.provider}; median of {len(local.pass_seconds)} "
                "passes). Served / local compares photos per second.",
            ]
        lines += [
            "",
            "## Triton's batching in each window (requests merged when runs < requests)",
            "",
            "| concurrency | per model |",
            "|---|---|",
        ]
        lines += [f"| {r.concurrency} | {r.batching()} |" for r in self.results]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {note}" for note in self.notes]
        environment = describe_environment(self.environment)
        if environment:
            lines += ["", "## Environment (client side)", ""] + [f"- {line}" for line in environment]
        return "\n".join(lines).rstrip() + "\n"
