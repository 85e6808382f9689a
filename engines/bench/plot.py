"""The bench plot: FPS and ms/frame against batch size, a line per backend, a row per
artifact (matplotlib, Agg: no screen needed)."""

from __future__ import annotations

import io

from facebatch.core.errors import SpecError
from facebatch.engines.bench.report import BenchReport

INSTALL_HINT = "pip install 'facebatch[plot]' (matplotlib)"


def plot_png(report: BenchReport) -> bytes:
    """The PNG, as bytes (the caller writes them atomically)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError(f"the plot needs matplotlib: {INSTALL_HINT}", field="plot") from None
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    artifacts = report.artifacts()
    figure, axes = plt.subplots(len(artifacts), 2, figsize=(11, 3.6 * len(artifacts)), squeeze=False)
    for row, artifact in enumerate(artifacts):
        fps_axis, ms_axis = axes[row]
        for run in report.runs_of(artifact):
            batches = [t.batch for t in run.timings]
            label = f"{run.backend} ({run.precision})"
            fps_axis.plot(batches, [t.fps for t in run.timings], marker="o", label=label)
            ms_axis.plot(batches, [t.ms_per_frame for t in run.timings], marker="o", label=label)
        batch_sizes = sorted({t.batch for run in report.runs_of(artifact) for t in run.timings})
        for axis, ylabel in ((fps_axis, "frames per second"), (ms_axis, "ms per frame")):
            axis.set_xscale("log", base=2)
            axis.xaxis.set_major_locator(FixedLocator(batch_sizes))  # the measured sizes, as plain numbers
            axis.xaxis.set_major_formatter(ScalarFormatter())
            axis.xaxis.set_minor_locator(NullLocator())
            axis.set_ylim(0, axis.get_ylim()[1] * 1.12)  # from zero, so small differences are not blown up
            axis.set_xlabel("batch size")
            axis.set_ylabel(ylabel)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize="small")
        fps_axis.set_title(f"{artifact}: throughput", fontsize="medium")
        ms_axis.set_title(f"{artifact}: time per frame (median)", fontsize="medium")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
