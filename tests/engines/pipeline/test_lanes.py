"""Lanes: pipelines side by side, each with its own runtimes, reading and running its own photos;
the results come out in the photos' order and are the faces one lane finds. The scheduler alone
(order, a lane's failure, a caller that stops) on lanes that are plain functions, then on real models."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.environment import physical_cores
from facebatch.core.errors import SpecError
from facebatch.engines.evaluation.agreement import compare_runs
from facebatch.engines.pipeline.image_faces import ImageFaces
from facebatch.engines.pipeline.lanes import LANE_CHUNKS_AHEAD, LaneScheduler
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineOptions

# runtimes on 1 thread against 2 might sum in other orders; measured on the fixtures: 0.000 px and cosine 1.0 (FP32
# and INT8, ort-cpu and openvino), the tolerance the bench gives runs on the same runtime
PIXELS, COSINE = 1e-3, 0.99999


@pytest.fixture(scope="module")
def models(real_detector: Path, batch_embedder: Path):
    return read_model_file(real_detector), read_model_file(batch_embedder)


def test_lanes_find_the_faces_one_lane_finds_in_the_photos_order(models, photos: list[Path], tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    paths = [*photos[:5], broken, *photos[5:]]
    with open_pipeline(*models, settings=PipelineOptions(lanes=1)) as one:
        assert one.other_lanes == []
        alone = list(one.run(paths))
    seen = []
    with open_pipeline(*models, settings=PipelineOptions(lanes=2, batch_size=2)) as two:
        assert len(two.other_lanes) == 1 and two.detector.threads == max(1, physical_cores() // 2)
        side_by_side = list(two.run(paths, on_result=seen.append))
        ran = {thread.name for thread in threading.enumerate()}
        assert two.other_lanes[0].detector.last_inference_seconds is not None  # the second lane ran photos too
        assert not [name for name in ran if name.startswith("facebatch-lane-")]  # and its thread is gone
        assert two.times.images == len(paths) and two.times.faces == sum(len(r) for r in alone)
        assert two.other_lanes[0].times.images == 0  # absorbed into the first lane's
    assert [r.path for r in side_by_side] == [r.path for r in seen] == paths
    assert not side_by_side[5].ok and "is not a whole image" in side_by_side[5].error
    agreement = compare_runs("two lanes vs one", side_by_side, alone, PIXELS, COSINE)
    assert agreement.passed and agreement.faces == sum(len(r) for r in alone), agreement.problems


def test_a_caller_that_stops_early_leaves_no_lane_running(models, photos: list[Path]):
    with open_pipeline(*models, settings=PipelineOptions(lanes=2, batch_size=1)) as pipeline:
        results = pipeline.run(photos)
        first = next(results)
        results.close()  # the consumer walks away: the lanes finish the chunk in hand and stop
        assert first.path == photos[0]
        assert not [t for t in threading.enumerate() if t.name.startswith("facebatch-lane-")]
        assert [r.path for r in pipeline.run(photos[:3])] == photos[:3]  # and the pipeline runs again


def test_openvino_lanes_run_unpinned_and_find_the_faces_one_lane_finds(models, photos: list[Path]):
    pytest.importorskip("openvino")
    with open_pipeline(*models, "openvino", PipelineOptions(lanes=1)) as one:
        alone = list(one.run(photos[:6]))
    with open_pipeline(*models, "openvino", PipelineOptions(lanes=2, batch_size=1)) as two:
        lanes = [two, *two.other_lanes]
        side_by_side = list(two.run(photos[:6]))
        # pinned, both lanes' 1-thread models sat on one core (7.0 photos/s against 12.1 unpinned)
        assert [lane.detector.pinned for lane in lanes] == [lane.embedder.pinned for lane in lanes] == [False, False]
        assert two.other_lanes[0].detector.last_inference_seconds is not None
    agreement = compare_runs("two OpenVINO lanes vs one", side_by_side, alone, PIXELS, COSINE)
    assert agreement.passed and agreement.faces == sum(len(r) for r in alone), agreement.problems


def test_the_lane_plan_shares_the_cores():
    cores, plan = physical_cores(), LaneScheduler.plan
    assert plan(None, "ort-cpu", None) == (min(8, cores), max(1, cores // min(8, cores)))
    assert plan(None, "ort-cpu", 1) == (min(8, cores), 1)
    assert plan(None, "openvino", None) == (1, None)  # by default one lane: each lane compiles its models
    assert plan(2, "openvino", None) == (2, max(1, cores // 2))  # asked for: the cores shared
    assert plan(None, "ort-cpu", cores) == (1, cores)  # threads alone: the lanes the cores leave
    assert plan(3, "ort-cpu", None) == (3, max(1, cores // 3))  # lanes alone: the cores shared
    assert plan(None, "ort-cuda", None) == (1, None) and plan(3, "trt", 4) == (1, 4)
    with pytest.raises(SpecError, match="^lanes must be at least 1, got 0$") as refused:
        PipelineOptions(lanes=0)
    assert refused.value.field == "lanes"


def test_chunks_leave_each_lane_several():
    paths = [Path(f"{i}.jpg") for i in range(17)]
    assert [len(c) for c in LaneScheduler.chunked(paths, 8, 2)] == [3] * 5 + [2]  # 17 / (2 lanes × 4 chunks)
    assert [len(c) for c in LaneScheduler.chunked(paths, 2, 2)] == [2] * 8 + [1]  # never above the batch
    assert LaneScheduler.chunked([], 8, 2) == []


def _named(chunk) -> list[ImageFaces]:
    return [ImageFaces(path) for path in chunk]


def _chunks(count: int) -> list[list[Path]]:
    return [[Path(f"{i}.jpg")] for i in range(count)]


def test_the_scheduler_hands_results_back_in_order_whichever_lane_finishes_first():
    fast_done, slow_started = [], []
    fast_ran_ahead = threading.Event()

    def slow(chunk):  # holds its first chunk until the other lane has finished two
        if not slow_started:
            slow_started.append(chunk)
            fast_ran_ahead.wait(timeout=30)
        return _named(chunk)

    def fast(chunk):
        fast_done.append(chunk)
        if len(fast_done) >= 2:
            fast_ran_ahead.set()
        return _named(chunk)

    with LaneScheduler([slow, fast], _chunks(6)) as scheduler:
        got = [r.path.name for results in scheduler.results() for r in results]
    assert got == [f"{i}.jpg" for i in range(6)]
    assert not [t for t in threading.enumerate() if t.name.startswith("facebatch-lane-")]


def test_a_lanes_failure_reaches_the_caller_in_order_and_the_lanes_stop():
    def lane(chunk):
        if chunk[0].name == "3.jpg":
            raise ValueError("photo 3 broke the runtime")
        return _named(chunk)

    got = []
    with pytest.raises(ValueError, match="photo 3 broke the runtime"):
        with LaneScheduler([lane, lane], _chunks(12)) as scheduler:
            for results in scheduler.results():
                got += [r.path.name for r in results]
    assert got == ["0.jpg", "1.jpg", "2.jpg"]  # everything before the failure, nothing after
    assert not [t for t in threading.enumerate() if t.name.startswith("facebatch-lane-")]


def test_the_lanes_run_at_most_their_chunks_ahead_of_the_caller():
    ahead = LANE_CHUNKS_AHEAD * 2  # chunks two lanes may hold beyond what the caller has taken
    taken, consumed, too_far = [], [0], []
    ran_ahead = threading.Event()

    def lane(chunk):
        index = int(chunk[0].stem)
        if index > consumed[0] + ahead:  # chunk i is handed out only while i < (chunks handed back) + ahead
            too_far.append(index)
        taken.append(index)
        if len(taken) > ahead:
            ran_ahead.set()
        return _named(chunk)

    with LaneScheduler([lane, lane], _chunks(20)) as scheduler:
        for _ in scheduler.results():
            if consumed[0] == 0:  # while the caller holds the first chunk, the lanes run as far ahead as allowed
                assert ran_ahead.wait(timeout=30)
            consumed[0] += 1
    assert not too_far and sorted(taken) == list(range(20))


def test_embed_runs_in_lanes_from_the_command_line(real_detector: Path, batch_embedder: Path, photos, tmp_path):
    from facebatch.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:4]:
        shutil.copy(photo, folder)
    argv = ["embed", str(folder), "--detector", str(real_detector), "--embedder", str(batch_embedder)]
    assert main([*argv, "-o", str(tmp_path / "two.npz"), "--lanes", "2"]) == 0
    assert main([*argv, "-o", str(tmp_path / "one.npz"), "--lanes", "1"]) == 0
    import numpy as np

    two, one = np.load(tmp_path / "two.npz"), np.load(tmp_path / "one.npz")
    assert list(two["images"]) == list(one["images"]) and (two["embeddings"] * one["embeddings"]).sum(1).min() > COSINE
