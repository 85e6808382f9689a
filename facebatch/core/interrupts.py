"""Signals as exceptions, so that every command ends cleanly on SIGINT, SIGTERM and SIGHUP.

Python turns only SIGINT into an exception; SIGTERM (``timeout``, ``kill``, a CI runner giving up)
and SIGHUP (a closed terminal) end the process on the spot, and every draft, staging and scratch
folder stays behind. Inside ``interrupts_as_exceptions`` each of the three raises ``Interrupted``
where the program is, so the ``finally`` blocks and context managers that remove those folders
run; the first signal also sets all three to be ignored, so that a second Ctrl-C cannot cut the
clean-up short. The handler itself does nothing but raise: no torch, no I/O. (The output folders
a run made, removed at its end when still empty, are the run's: ``facebatch.core.run``.)

Work that keeps what it finished (annotated copies, a gallery's committed shards) says so through
``keeping``: an interrupt leaving its block carries ``kept`` ("17 annotated copies written to out/"),
which the command line adds to its one line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A caught signal, raised where the program was (a BaseException, as KeyboardInterrupt is: no
    ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: SIGINT 130, SIGTERM 143, SIGHUP 129


_deferring = 0  # > 0 inside ``deferred``: a signal is held until the block ends
_held: list[int] = []


def _raise(signum: int, frame: object) -> None:
    for caught in CAUGHT:  # the clean-up that follows runs to its end
        signal.signal(caught, signal.SIG_IGN)
    if _deferring:
        _held.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal inside the block is held and raised as ``Interrupted`` when the block ends. For a library
    call that must not see an exception of ours mid-way: torch's dynamo exporter catches what its trace
    raises (wrapped by its C++ layer into an ordinary error) and starts its next capture strategy, entering
    a FakeTensorMode while the interrupted one is still set: 'trying to set the current FakeTensorMode,
    but one already exists', a C++ abort (exit 134) that no clean-up survives."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _held:
            signum = _held[0]
            _held.clear()
            raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` inside the block (main thread only: Python
    runs handlers there); the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {caught: signal.signal(caught, _raise) for caught in CAUGHT}
    try:
        yield
    finally:
        for caught, handler in previous.items():
            signal.signal(caught, handler)


@contextlib.contextmanager
def keeping(describe: Callable[[], str | None]) -> Iterator[None]:
    """An interrupt (``Interrupted``, KeyboardInterrupt) leaving the block carries what the work kept so far:
    ``describe()``, called then ("4 shards kept; run again to resume"; None: nothing to say). The innermost
    block that has something to say wins; a ``describe`` that fails says nothing (the interrupt goes on)."""
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as exc:
        if kept(exc) is None:
            with contextlib.suppress(Exception):
                exc.kept = describe()  # type: ignore[union-attr]
        raise


def kept(exc: BaseException) -> str | None:
    """What the interrupted work kept, as ``keeping`` recorded it on ``exc`` (None: nothing said)."""
    return getattr(exc, "kept", None)


def as_interrupted(exc: BaseException) -> Interrupted | None:
    """The signal behind ``exc``: an ``Interrupted``, or a KeyboardInterrupt (SIGINT outside our handler)."""
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(signal.SIGINT)
    return None
