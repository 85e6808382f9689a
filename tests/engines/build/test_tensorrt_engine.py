"""The TensorRT builder's surroundings that need no GPU, on the real Polygraphy: its logger is
quiet only while a build runs, and given back as it was however the build ends (it is one
object for the whole process; another user of it keeps its own severity)."""

from __future__ import annotations

import pytest

from facebatch.engines.build.tensorrt_engine import polygraphy_quiet

logger_module = pytest.importorskip("polygraphy.logger", reason="Polygraphy (the test and gpu extras) is not installed")


def test_polygraphy_is_quiet_inside_the_build_only_and_restored_after_a_failure():
    logger = logger_module.G_LOGGER
    before = logger.module_severity.get()
    logger.module_severity = logger.VERBOSE  # someone else's choice, process-wide
    try:
        with polygraphy_quiet():
            assert logger.module_severity.get() == logger.ERROR
        assert logger.module_severity.get() == logger.VERBOSE
        with pytest.raises(RuntimeError), polygraphy_quiet():
            raise RuntimeError("the build failed")
        assert logger.module_severity.get() == logger.VERBOSE
    finally:
        logger.module_severity = before
