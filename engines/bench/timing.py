"""Latency as raw samples, with everything else derived from them (optimum-benchmark's way):
percentiles, min and max so that a noisy run shows as noisy, and throughput per batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Latency:
    samples: tuple[float, ...]  # seconds, one per timed call

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a latency needs at least one sample")

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples, dtype=np.float64), q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def spread(self) -> float:
        """How far the samples spread: p90 / p10 (1.0: every call took as long)."""
        fast = self.percentile(10)
        return self.percentile(90) / fast if fast > 0 else float("inf")

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))


# A cell whose slowest tenth of calls takes more than this times its fastest tenth was measured while something else
# ran (a shared VM, a second job): its median still stands, but the report says so. On the 2-core CI machines an idle
# run keeps p90/p10 under 1.2; runs beside another job reached 1.8 (the 3.29, 2.17, 1.79 s of one batch-32 cell).
SPREAD_WARN = 1.5


@dataclass
class BatchTiming:
    """One batch size: its timed calls, and the throughput they give."""

    batch: int
    latency: Latency
    warmup_calls: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second at the median latency: batch / p50."""
        return self.batch / self.latency.p50

    def spread_warning(self) -> str | None:
        """A sentence when this cell's samples spread more than ``SPREAD_WARN``, else None."""
        latency = self.latency
        if len(latency.samples) < 3 or latency.spread <= SPREAD_WARN:
            return None
        return (
            f"batch {self.batch}: its {len(latency.samples)} samples spread from {latency.min:.3g} to {latency.max:.3g} s "
            f"(p90/p10 {latency.spread:.2f} > {SPREAD_WARN:g}): something else ran; rerun it, or give it more seconds"
        )

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.latency.p50 / self.batch

    def to_dict(self) -> dict:
        lat = self.latency
        ms = {
            f"{k}_ms": 1000.0 * v
            for k, v in (
                ("p50", lat.p50),
                ("p90", lat.p90),
                ("p99", lat.p99),
                ("min", lat.min),
                ("max", lat.max),
                ("mean", lat.mean),
            )
        }
        return {
            "batch": self.batch,
            "fps": self.fps,
            "ms_per_frame": self.ms_per_frame,
            **ms,
            "calls": len(lat.samples),
            "warmup_calls": self.warmup_calls,
            "samples_s": list(lat.samples),
            "notes": self.notes,
        }
