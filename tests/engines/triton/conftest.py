"""What the served tests share: the tritonserver found here (PATH, else nvidia-pytriton's), or a skip saying why."""

from __future__ import annotations

import pytest

from facebatch.engines.triton.server import find_tritonserver
from facebatch.errors import SpecError


@pytest.fixture(scope="module")
def install():
    try:
        return find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))
