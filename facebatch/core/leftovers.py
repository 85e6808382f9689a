"""Private working folders named for the process that made them, and the removal of those a killed
run left behind.

A draft or a staging folder is ``<prefix><pid>-<random>`` beside what it becomes. A run that ends,
however it ends short of SIGKILL, removes its own (``finally``; SIGTERM and SIGHUP too, see
``facebatch.core.interrupts``). SIGKILL cannot be caught: the next run that makes a folder of the same
kind in the same place removes each one whose maker is gone, that is whose pid no longer runs or
runs a process started after the folder was made (the pid was reused), and says so in one line.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from facebatch.core.progress import warn

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def private_folder(parent: Path, prefix: str) -> Path:
    """A new folder ``<prefix><pid>-…`` in ``parent``, after removing the stale ones of that prefix."""
    remove_stale(parent, prefix)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{os.getpid()}-"))


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None where that cannot be read."""
    boot = _boot_time()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, starttime field 22
    return None if boot is None else boot + int(fields[19]) / CLOCK_TICKS


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def maker_gone(pid: int, made: float) -> bool:
    """The process that made a folder at ``made`` is gone: no such pid, or the pid is a later process."""
    if pid == os.getpid():
        return False
    if not running(pid):
        return True
    started = process_started(pid)
    return started is not None and started > made + 1.0  # a second for clock granularity


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders ``<prefix><pid>-…`` in ``parent`` whose maker is gone; one line says so."""
    removed = []
    # exactly what private_folder makes (mkdtemp's 8 random characters), never a glob: the prefix holds a
    # target's name, which may hold glob characters ('?.onnx'), and a user's '<prefix>123-notes' is not ours
    ours = re.compile(re.escape(prefix) + r"([0-9]+)-[a-z0-9_]{8}")
    try:
        candidates = [(entry, found) for entry in Path(parent).iterdir() if (found := ours.fullmatch(entry.name))]
    except OSError:
        return removed
    for folder, found in candidates:
        try:
            made = folder.stat().st_mtime
        except OSError:
            continue
        if folder.is_dir() and not folder.is_symlink() and maker_gone(int(found.group(1)), made):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        names = ", ".join(f.name for f in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        warn(f"removed {len(removed)} folder(s) in {parent} left by a run that was killed: {names}")
    return removed
