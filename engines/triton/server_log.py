"""Where tritonserver's log goes, and what of it a failure carries: a file the caller keeps, a scratch file that
goes with the server (the default: a machine without a GPU gets a screenful of CUDA and NVML errors that are no
error of the server's), or this process's terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from facebatch.core.errors import EngineError

# what tritonserver logs on a machine without a GPU (or its driver): no error of the server's or the models'
LOG_NOISE = ("CudaDriverHelper", "pinned system memory", "CUDA memory pool", "GPU metrics", "NVML", "DCGM")
LOG_TAIL_LINES = 20  # how much of the log a ServerFailed carries, each line cut at LOG_LINE_CHARS
LOG_LINE_CHARS = 300
SCRATCH_LOG = "tritonserver.log"


class ServerFailed(EngineError):
    """tritonserver stopped, or was not ready in time. ``log_tail``: its log's last lines (the GPU noise of a
    machine without one left out); ``log``: the log file kept, None where it went with the server."""

    def __init__(self, message: str, log_tail: Sequence[str] = (), log: Path | None = None) -> None:
        super().__init__(message)
        self.log_tail = tuple(log_tail)
        self.log = log


class ServerLog:
    """tritonserver's log: into ``kept`` (a file that stays), else on the terminal (``shown``), else into a scratch
    folder's file that goes when the folder does."""

    def __init__(self, kept: Path | None = None, shown: bool = False) -> None:
        self.kept = None if kept is None else Path(kept)
        self.shown = shown and kept is None
        self.path: Path | None = self.kept  # where it is written while the server runs; None: the terminal
        self._file: IO[bytes] | None = None

    def open(self, scratch: Path) -> IO[bytes] | None:
        """The file the server's output goes to (None: the terminal), open until ``close``."""
        if self.kept is None and not self.shown:
            self.path = scratch / SCRATCH_LOG
        if self.path is not None:
            self._file = open(self.path, "wb")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path = self.kept

    def lines(self) -> list[str]:
        """The log so far, the GPU noise of a machine without one and the summary tables (of its backends, models
        and options; their heading lines end in "] ") left out ([] on the terminal)."""
        if self.path is None:
            return []
        if self._file is not None:
            self._file.flush()
        with contextlib.suppress(OSError):
            text = self.path.read_text(errors="replace")
            return [line for line in text.splitlines() if _worth_reading(line)]
        return []

    def first_error(self) -> str:
        """The log's first error line (it says more), or where the log went."""
        if self.path is None:
            return "its log is above"
        lines = self.lines()
        errors = [line for line in lines if line[:1] == "E"]
        errors += [line for line in lines if "error:" in line.lower() and line not in errors]
        kept = f" (log: {self.kept})" if self.kept is not None else ""
        return f"{(errors or lines or ['no output'])[0].strip()[:400]}{kept}"

    def failed(self, message: str) -> ServerFailed:
        """``message`` with the log's last lines, read now (a scratch log goes with the server)."""
        tail = [line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS] + " …" for line in self.lines()]
        return ServerFailed(message, tail[-LOG_TAIL_LINES:], self.kept)


def _worth_reading(line: str) -> bool:
    return (
        bool(line.strip())
        and line[:1] not in "|+"
        and not line.endswith("] ")
        and not any(n in line for n in LOG_NOISE)
    )
