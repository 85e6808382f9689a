"""The runner protocol itself: what every runtime gets from engines/runners/base.Runner."""

import pytest


def test_an_activation_that_fails_after_allocating_frees_what_it_took():
    from facebatch.core.errors import EngineError
    from facebatch.engines.runners.base import Runner

    class HalfActivated(Runner):
        def __init__(self) -> None:
            super().__init__("half")
            self.held: list[str] = []

        def _activate(self):
            self.held.append("device buffers")
            raise EngineError("the engine needs another GPU")

        def _deactivate(self) -> None:
            self.held.clear()

        def _infer(self, feed):
            raise AssertionError("never runs")

    runner = HalfActivated()
    with pytest.raises(EngineError, match="another GPU"):
        with runner:
            pass
    assert runner.held == []
