"""What the served tests share: the tritonserver found here (PATH, else nvidia-pytriton's), or a skip saying why;
the sockets a process listens on."""

from __future__ import annotations

import pytest

from facebatch.core.errors import SpecError
from facebatch.engines.triton.server import find_tritonserver
from tests.data import procfs


@pytest.fixture(scope="module")
def install():
    try:
        return find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that process ``pid`` listens on, read from /proc."""
    return {(address, port) for _, address, port in procfs.tcp_listeners({pid})}
