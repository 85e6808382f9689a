"""The one protocol every runtime is run through (in the spirit of Polygraphy's BaseRunner).

    with OnnxRuntimeRunner(path) as runner:          # activates; metadata read once
        outputs = runner.infer({"input.1": frames})  # numpy in, numpy out, inputs checked
        runner.last_inference_seconds, runner.provider

A runner is a context manager. On entry it loads the model and reads its input and output
metadata once; ``infer`` checks the feed against that metadata (names, dtypes, ranks,
fixed dims, one value per symbol) before the runtime sees it, times the call, and returns
the outputs by name in the model's order. ``provider`` names the device/provider that
really ran, which may differ from the one asked for. Runtime failures become one-line
``EngineError``s; a feed that does not fit is a ``SpecError`` that says what was expected.

Nothing outside ``engines/runners`` calls a runtime directly: verify, repair, bench, the
pipeline and Triton models all go through a runner, so a new runtime is one module.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from facebatch.core.errors import EngineError, SpecError

Dim = int | str | None  # fixed, symbolic, unknown
T = TypeVar("T")


@dataclass(frozen=True)
class TensorMeta:
    """One input or output as the runtime declares it."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.dtype} [{dims}]"


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A runtime's exception as one line (they carry stack dumps and C++ context)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def check_feed(label: str, expected: Sequence[TensorMeta], feed: Mapping[str, np.ndarray]) -> None:
    """Every input present and nothing else; dtype, rank and fixed dims as declared; a symbol
    (e.g. ``batch``) takes one value across all inputs."""
    names = [m.name for m in expected]
    if set(feed) != set(names):
        raise SpecError(f"{label} takes inputs {names}, got {sorted(feed)}")
    symbols: dict[str, tuple[int, str]] = {}
    for meta in expected:
        array = feed[meta.name]
        wanted = meta.describe()
        got = f"{array.dtype} {list(array.shape)}"
        if array.dtype != meta.dtype:
            raise SpecError(f"{label}: input {wanted} got {got}; convert the feed to {meta.dtype}")
        if array.ndim != len(meta.shape):
            raise SpecError(f"{label}: input {wanted} got {got} (rank {array.ndim}, not {len(meta.shape)})")
        for axis, (dim, size) in enumerate(zip(meta.shape, array.shape, strict=False)):
            if isinstance(dim, int) and dim > 0 and dim != size:
                raise SpecError(f"{label}: input {wanted} got {got}: axis {axis} must be {dim}")
            if isinstance(dim, str):
                seen = symbols.setdefault(dim, (size, meta.name))
                if seen[0] != size:
                    raise SpecError(f"{label}: symbol {dim!r} is {seen[0]} in {seen[1]} but {size} in {meta.name}")


def _fp16_feed(expected: Sequence[TensorMeta], feed: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """FP16 inputs (``facebatch convert --fp16-io``) take the FP32 frames preprocessing makes:
    cast on the way in, outside the timed call. No other dtype is converted silently."""
    fp16 = {m.name for m in expected if m.dtype == np.float16}
    if not fp16:
        return feed
    return {name: a.astype(np.float16) if name in fp16 and a.dtype == np.float32 else a for name, a in feed.items()}


class Runner(ABC):
    """Base of every runner. Subclasses implement ``_activate`` (load the model, return its
    input/output metadata and the provider that will run it), ``_deactivate`` and ``_infer``."""

    def __init__(self, label: str) -> None:
        self.label = label  # how errors name this model, e.g. the file name
        self.inputs: tuple[TensorMeta, ...] = ()
        self.outputs: tuple[TensorMeta, ...] = ()
        self.provider = ""  # the device/provider that really runs, known once active
        self.precision = "fp32"  # the arithmetic it runs in, as far as the runner decides it
        self.threads: int | None = None  # CPU threads the runtime was set to, once active (None: its own default)
        self.last_inference_seconds: float | None = None
        self._active = False

    # -- what a runtime implements ------------------------------------------------------------
    @abstractmethod
    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]: ...

    @abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs in the order of ``self.outputs``."""

    def _deactivate(self) -> None:  # noqa: B027 - most runtimes free themselves
        pass

    # -- the protocol -------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        try:
            inputs, outputs, provider = self._activate()
        except BaseException:
            self._deactivate()  # an activation that failed after allocating (device buffers) frees what it took
            raise
        self.inputs, self.outputs, self.provider = tuple(inputs), tuple(outputs), provider
        self._active = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._active = False
        self._deactivate()

    @property
    def input_names(self) -> list[str]:
        return [m.name for m in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [m.name for m in self.outputs]

    def infer(self, feed: Mapping[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._checked_and_timed(self._infer, feed, check_inputs), strict=False))

    def _checked_and_timed(
        self, run: Callable[[Mapping[str, np.ndarray]], T], feed: Mapping[str, np.ndarray], check_inputs: bool
    ) -> T:
        """What every entry point of a runner does around the runtime call."""
        if not self._active:
            raise EngineError(f"runner for {self.label} used outside its 'with' block")
        feed = _fp16_feed(self.inputs, feed)
        if check_inputs:
            check_feed(self.label, self.inputs, feed)
        contiguous = {name: np.ascontiguousarray(array) for name, array in feed.items()}
        start = time.perf_counter()
        result = run(contiguous)
        self.last_inference_seconds = time.perf_counter() - start
        return result


@runtime_checkable
class IntermediateTensors(Protocol):
    """A capability some runners have: every intermediate tensor of a run, by name, in the
    order the graph computes them (localisation compares them frame by frame)."""

    intermediate_names: list[str]

    def infer_intermediates(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
