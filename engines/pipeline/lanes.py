"""Lanes: pipelines side by side, each with its own runtimes, reading and running its own photos.
``LaneScheduler.plan`` says how many lanes a backend runs and the runtime threads of each (the CPU
policy); a ``LaneScheduler`` shares the chunks of one run among the lanes, one thread per lane, and
hands the results back in the photos' order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from facebatch.core.environment import physical_cores
from facebatch.engines.pipeline.image_faces import ImageFaces

LANE_CHUNKS_AHEAD = 2  # with lanes: chunks of photos per lane that may be done before the caller takes them
LANE_MIN_CHUNKS = 4  # with lanes: chunks are made small enough that each lane gets at least this many
# where lanes run: the CPU runtimes (OpenVINO's threads unpinned: pinned, two lanes ran 7.0 photos/s against 12.1, one
# lane 12.6); GPU backends run one lane. By default only onnxruntime's: OpenVINO lanes gain on 12 MP photos (9.9
# photos/s against 8.9) but not on the fixtures (22.6-23.2 against 22.3-26.0, INT8), and each lane compiles its own
# models (the first photo of `embed --precision int8` 1.9-2.1 s instead of 1.2-1.4), so there they are asked for
LANE_BACKENDS = ("ort-cpu", "openvino")
DEFAULT_LANE_BACKENDS = ("ort-cpu",)
MAX_DEFAULT_LANES = 8

# one lane's work: read, detect (and embed) a chunk of photos, on the lane's own runtimes
LaneWork = Callable[[Sequence[Path]], list[ImageFaces]]


class LaneScheduler:
    """One run over several lanes: each lane takes the next chunk of photos, reads them itself and
    runs them on its own runtimes; results come out in the photos' order, and the lanes run at most
    ``LANE_CHUNKS_AHEAD`` chunks per lane ahead of what has been taken. A ``with`` block starts the
    lanes' threads; leaving it (finished, failed, interrupted or abandoned) stops them after the chunk
    in hand and waits for them."""

    def __init__(self, lanes: Sequence[LaneWork], chunks: Sequence[Sequence[Path]]) -> None:
        self.lanes = list(lanes)
        self.chunks = list(chunks)
        self._done: dict[int, list[ImageFaces] | BaseException] = {}
        self._taken = 0  # chunks handed to a lane
        self._yielded = 0  # chunks handed to the caller
        self._stopped = False
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []

    @staticmethod
    def plan(lanes: int | None, backend: str, threads: int | None) -> tuple[int, int | None]:
        """How many lanes, and runtime threads per lane (None: the runtime's default). On onnxruntime's
        CPU provider by default one lane per physical core, each runtime on 1 thread: on 2 cores two such
        lanes ran 10.3 photos/s on 12 MP photos where one pipeline with 2-thread runtimes and 2 reader
        threads ran 7.7 (its readers pre-empt one of the runtime's two threads, and every operator waits
        for it); on the fixture photos each twice 12.8 against 11.1, on them once even (one photo holds
        most faces; docs/pipeline.md, lever 4). ``threads`` alone sets the lanes to the cores it leaves
        (cores // threads); ``lanes`` alone shares the cores among them. OpenVINO runs lanes when asked
        (``DEFAULT_LANE_BACKENDS``), GPU backends one (``LANE_BACKENDS``). Beyond ``MAX_DEFAULT_LANES`` cores
        the lanes' runtimes share them as threads (not measured here: more lanes hold more sessions in
        memory; the pipeline bench with several lane counts tells)."""
        if backend not in LANE_BACKENDS or (lanes is None and backend not in DEFAULT_LANE_BACKENDS):
            return 1, threads
        cores = physical_cores()
        if lanes is None:
            lanes = min(MAX_DEFAULT_LANES, max(1, cores // threads) if threads else cores)
        return lanes, threads or max(1, cores // lanes)

    @staticmethod
    def chunked(paths: Sequence[Path], batch: int, lanes: int) -> list[Sequence[Path]]:
        """``paths`` in chunks of ``batch`` photos, or fewer where that leaves a lane under ``LANE_MIN_CHUNKS``
        chunks: a runtime on one thread gains nothing from larger batches, and the last chunks leave lanes
        idle (17 photos on 2 lanes: chunks of 8 ran 9.9 photos/s, of 2 11.3)."""
        size = max(1, min(batch, -(-len(paths) // (lanes * LANE_MIN_CHUNKS))))
        return [paths[start : start + size] for start in range(0, len(paths), size)]

    def __enter__(self) -> LaneScheduler:
        self._threads = [
            threading.Thread(target=self._work, args=(lane,), name=f"facebatch-lane-{number}", daemon=True)
            for number, lane in enumerate(self.lanes)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def results(self) -> Iterator[list[ImageFaces]]:
        """Each chunk's results, in the chunks' order; a lane's exception is raised here, in the caller's thread."""
        for index in range(len(self.chunks)):
            with self._changed:
                while index not in self._done:
                    self._changed.wait()
                result = self._done.pop(index)
                self._yielded = index + 1
                self._changed.notify_all()
            if isinstance(result, BaseException):
                raise result
            yield result

    def _next_chunk(self) -> int | None:
        """The index of the chunk a lane takes next, once the lanes are not too far ahead; None: stop."""
        with self._changed:
            while (
                not self._stopped
                and self._taken < len(self.chunks)
                and self._taken - self._yielded >= LANE_CHUNKS_AHEAD * len(self.lanes)
            ):
                self._changed.wait()
            if self._stopped or self._taken >= len(self.chunks):
                return None
            self._taken += 1
            return self._taken - 1

    def _work(self, lane: LaneWork) -> None:
        while (index := self._next_chunk()) is not None:
            try:
                result: list[ImageFaces] | BaseException = lane(self.chunks[index])
            except BaseException as exc:  # handed to the caller's thread, in order
                result = exc
            with self._changed:
                self._done[index] = result
                self._changed.notify_all()
