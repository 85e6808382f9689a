"""Steps and progress go to the calling thread's reporter: two runs side by side never report into each
other's, and outside ``reporting`` (or a ``Run`` that names a reporter) they are log records."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import pytest

from facebatch.core.progress import Advance, LogReporter, current_reporter, progress_bar, reporting, step
from facebatch.core.run import Run


class Recorder:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.told: list[str] = []

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.told.append(f"step {label}")
        yield

    @contextlib.contextmanager
    def bar(self, total: int, label: str) -> Iterator[Advance]:
        yield lambda what: self.told.append(f"{label} {what}/{total}")


def test_two_threads_report_to_their_own_reporter():
    """Both reporters are installed before either reports (the barrier): with one reporter per process
    the second would have replaced the first, and both threads' steps would reach it."""
    both_installed, both_reported = threading.Barrier(2), threading.Barrier(2)
    recorders = {"reporting": Recorder(), "run": Recorder()}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with reporting(recorders[name]) if name == "reporting" else Run(reporter=recorders[name]):
                both_installed.wait(timeout=30)
                with step(f"{name} step"), progress_bar(1, name) as advance:
                    advance("photo")
                both_reported.wait(timeout=30)
            assert isinstance(current_reporter(), LogReporter)  # the block's end gave the thread the log again
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in recorders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for name, recorder in recorders.items():
        assert recorder.told == [f"step {name} step", f"{name} photo/1"], (name, recorder.told)


def test_reporting_nests_and_gives_back_the_previous_reporter(caplog: pytest.LogCaptureFixture):
    outer, inner = Recorder(), Recorder()
    with reporting(outer):
        with reporting(inner):
            with step("inner"):
                pass
        with step("outer"):
            pass
    assert (outer.told, inner.told) == (["step outer"], ["step inner"])
    with caplog.at_level(logging.INFO, logger="facebatch.progress"), step("logged"):
        pass
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["… logged", "✓ logged"]
