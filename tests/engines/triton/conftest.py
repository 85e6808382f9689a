"""What the served tests share: the tritonserver found here (PATH, else nvidia-pytriton's), or a skip saying why;
the sockets a process listens on."""

from __future__ import annotations

import os
import signal
import time

import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.triton.install import find_tritonserver
from facebatch.engines.triton.stubs import python_stubs
from tests.conftest import slow_fixture
from tests.data import procfs


@pytest.fixture(scope="module")
@slow_fixture("the tritonserver its test starts")
def install():
    try:
        return find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))


def kill_stub(server: int, pid: int, limit_s: float = 30.0) -> None:
    """SIGKILL python stub ``pid`` of tritonserver ``server`` and return once it is gone from the live stubs (a kill
    is delivered, and the dead stub reaped, after os.kill returns: a supervisor checking at once may still see it)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + limit_s
    while any(stub.pid == pid for stub in python_stubs(server)):
        if time.monotonic() > deadline:
            pytest.fail(f"python stub {pid} still alive {limit_s:.0f} s after SIGKILL")
        time.sleep(0.02)


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that process ``pid`` listens on, read from /proc."""
    return {(address, port) for _, address, port in procfs.tcp_listeners({pid})}
