"""``python tests/data/tripwire.py SIGNAL MOMENT ARGV…``: the ``facebatch`` command line (``python -m
facebatch ARGV…``, exactly) that sends itself ``SIGNAL`` at one exact moment of its run:

- ``line:TEXT``: when it writes a line with TEXT on stderr (a step or progress line: "… index [5/17]");
- ``call:MODULE:QUALNAME``: when that function is first called (``…@N``: its Nth call), e.g. inside torch's
  exporter (``call:torch._subclasses.fake_tensor:FakeTensorMode.__enter__``).

A signal sent from another process after it has seen a line lands wherever the run has got to by then (on a
loaded machine, possibly after the run ended); sent from inside, at the moment itself, it lands at the same
place every run. Python runs the handler in the main thread before its next instruction, so the run goes no
further than the moment (SIGKILL: the process is gone). It says ``tripwire: SIGNAL at MOMENT`` on stderr first.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def command(sig: int, moment: str, *argv: str) -> list[str]:
    """The command that runs ``facebatch ARGV`` and sends itself ``sig`` at ``moment``."""
    return [sys.executable, __file__, signal.Signals(sig).name, moment, *argv]


class _LineTripwire:
    """stderr, firing the first time a write holds ``text``."""

    def __init__(self, stream: Any, text: str, fire: Callable[[], None]) -> None:
        self._stream, self._text, self._fire = stream, text, fire

    def write(self, data: str) -> int:
        written = self._stream.write(data)
        if self._text in data:
            self._stream.flush()
            self._fire()
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _arm_call(where: str, fire: Callable[[], None]) -> None:
    module_name, qualname = where.split(":", 1)
    qualname, _, nth = qualname.partition("@")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    def tripped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == int(nth or 1):
            fire()
        return original(*args, **kwargs)

    setattr(owner, name, tripped)


def main() -> None:
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # run as a script: the test helpers beside it are not modules of the run
    sig, moment, argv = signal.Signals[sys.argv[1]], sys.argv[2], sys.argv[3:]
    fired = False
    stderr = sys.stderr

    def fire() -> None:
        nonlocal fired
        if not fired:
            fired = True
            stderr.write(f"tripwire: {sig.name} at {moment}\n")
            stderr.flush()
            os.kill(os.getpid(), sig)

    kind, _, where = moment.partition(":")
    if kind == "line":
        sys.stderr = _LineTripwire(stderr, where, fire)
    elif kind == "call":
        _arm_call(where, fire)
    else:
        raise SystemExit(f"tripwire: unknown moment {moment!r} (line:TEXT or call:MODULE:QUALNAME[@N])")
    sys.argv = ["facebatch", *argv]
    from facebatch.cli import entry

    entry()


if __name__ == "__main__":
    main()
