"""onnxruntime behind the small runner protocol: numpy in, numpy out, inputs checked
against the graph's metadata before they reach the session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from facebatch.errors import EngineError, SpecError


class OnnxRuntimeRunner:
    """``with OnnxRuntimeRunner(path) as runner: outputs = runner.infer({"input.1": x})``."""

    def __init__(
        self,
        path: Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.providers = tuple(providers)
        self.intra_op_threads = intra_op_threads
        self._session = None

    def __enter__(self) -> OnnxRuntimeRunner:
        import onnxruntime as ort  # heavy; imported on use

        if not self.path.is_file():
            raise SpecError(f"ONNX file {self.path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=list(self.providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EngineError(f"onnxruntime cannot load {self.path}: {first_line}") from exc
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._session = None

    @property
    def session(self):  # noqa: ANN201 - onnxruntime type, imported lazily
        if self._session is None:
            raise EngineError("runner used outside its 'with' block")
        return self._session

    def input_shapes(self) -> dict[str, list[int | str | None]]:
        return {i.name: list(i.shape) for i in self.session.get_inputs()}

    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        expected = self.input_shapes()
        if set(feed) != set(expected):
            raise SpecError(f"{self.path.name} takes inputs {sorted(expected)}, got {sorted(feed)}")
        for name, array in feed.items():
            shape = expected[name]
            if array.ndim != len(shape) or any(
                isinstance(d, int) and d != a for d, a in zip(shape, array.shape)
            ):
                raise SpecError(f"{self.path.name}: input {name!r} wants shape {shape}, got {list(array.shape)}")
        values = self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feed.items()})
        return dict(zip(self.output_names(), values))
