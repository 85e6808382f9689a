"""Latency keeps its raw samples; everything printed is derived from them."""

import pytest

from facebatch.engines.bench.timing import BatchTiming, Latency


def test_percentiles_throughput_and_time_per_frame_come_from_the_samples():
    timing = BatchTiming(8, Latency((0.2, 0.1, 0.4, 0.3, 0.5)), warmup_calls=2)
    lat = timing.latency
    assert (lat.p50, lat.min, lat.max, lat.mean) == (0.3, 0.1, 0.5, pytest.approx(0.3))
    assert lat.p90 == pytest.approx(0.46) and lat.p99 == pytest.approx(0.496)  # numpy's linear interpolation
    assert timing.fps == pytest.approx(8 / 0.3) and timing.ms_per_frame == pytest.approx(300 / 8)
    data = timing.to_dict()
    assert data["samples_s"] == [0.2, 0.1, 0.4, 0.3, 0.5] and data["calls"] == 5 and data["warmup_calls"] == 2
    assert data["p50_ms"] == pytest.approx(300.0) and data["fps"] == pytest.approx(8 / 0.3)
    with pytest.raises(ValueError):
        Latency(())


def test_a_cell_whose_samples_spread_says_so():
    from facebatch.engines.bench.timing import SPREAD_WARN, BatchTiming, Latency

    busy = BatchTiming(32, Latency((3.29, 2.17, 1.79)))  # one batch-32 cell measured beside another job
    warning = busy.spread_warning()
    assert warning is not None and "spread from 1.79 to 3.29 s" in warning and f"> {SPREAD_WARN:g}" in warning
    assert BatchTiming(32, Latency((2.0, 2.02, 1.98, 2.01))).spread_warning() is None  # an idle machine
