"""The readers: a photo prepared for the detector (or its error), and the prefetching thread pool
that hands the photos back in order, batch by batch, and stops when the caller stops."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.pipeline.options import FaceModels
from facebatch.engines.pipeline.reader import PREFETCH_BATCHES, PreparedPhoto, prefetched, prepare_photo


@pytest.mark.parametrize("workers", [0, 2])
def test_prefetched_batches_come_in_order(workers: int):
    paths = [Path(f"{i}.jpg") for i in range(7)]
    batches = list(prefetched(paths, PreparedPhoto, 3, workers))
    assert [[p.path.name for p in batch] for batch in batches] == [
        ["0.jpg", "1.jpg", "2.jpg"],
        ["3.jpg", "4.jpg", "5.jpg"],
        ["6.jpg"],
    ]


def test_the_readers_stay_within_their_window_and_stop_with_the_caller():
    started: list[str] = []
    window = 2 * PREFETCH_BATCHES  # batches of 2

    def prepare(path: Path) -> PreparedPhoto:
        started.append(path.name)
        return PreparedPhoto(path)

    batches = prefetched([Path(f"{i}.jpg") for i in range(40)], prepare, 2, 2)
    with contextlib.closing(batches):
        first = next(batches)
    assert [p.path.name for p in first] == ["0.jpg", "1.jpg"]
    assert len(started) <= 2 + window  # the batch handed back, and the window refilled behind it
    assert not [t for t in threading.enumerate() if t.name.startswith("facebatch-read")]  # closed: readers gone


def test_a_photo_that_cannot_be_read_is_an_error_in_its_result(real_detector: Path, photos: list[Path], tmp_path):
    detector = read_model_file(real_detector)
    models = FaceModels(detector.spec, detector.spec.input_size)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    refused = prepare_photo(models, broken)
    assert refused.error is not None and "is not a whole image" in refused.error and refused.frame is None
    ready = prepare_photo(models, photos[0])
    assert ready.error is None and ready.frame.shape == (3, *detector.spec.input_size) and ready.factor == 1
