"""OpenVINO on the CPU behind the runner protocol; openvino itself is imported on activation.

The ONNX file is read directly (no conversion step) with its symbolic batch kept dynamic.
Precision is pinned to f32: OpenVINO's CPU plugin otherwise picks bf16 on CPUs that have it
(2–3× faster here, with other numbers), which would make a comparison with onnxruntime's
fp32 meaningless. Threads are explicit, like onnxruntime's; where a count is given, other work
shares the cores (the pipeline's lanes and readers), so OpenVINO's pinning of its threads to
cores is turned off: two pipeline lanes of pinned 1-thread models ran 7.0 photos/s on the fixture
photos, unpinned 12.1 (one lane of 2 threads: 12.6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facebatch.core.errors import EngineError, SpecError
from facebatch.core.onnx_graph import load_onnx
from facebatch.engines.runners.base import Runner, TensorMeta, first_line

INSTALL_HINT = "pip install 'facebatch[openvino]'"
PRECISION = "f32"


def _dims(partial_shape) -> tuple[int | None, ...]:  # openvino PartialShape
    return tuple(d.get_length() if d.is_static else None for d in partial_shape)


class OpenVinoRunner(Runner):
    """``with OpenVinoRunner(path, threads=2) as runner: runner.infer({"input.1": x})``."""

    def __init__(self, path: Path, threads: int | None = None, device: str = "CPU", label: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(label or self.path.name)
        self.threads = threads
        self.device = device
        self.pinned: bool | None = None  # whether OpenVINO pins its threads to cores (read on activation)
        self._request = None

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        try:
            import openvino as ov  # heavy; imported on use
        except ImportError:
            raise EngineError(f"the openvino backend needs the OpenVINO runtime: {INSTALL_HINT}") from None
        if not self.path.is_file():
            raise SpecError(f"ONNX file {self.path} does not exist")
        graph_outputs = {o.name for o in load_onnx(self.path, "ONNX file", EngineError).graph.output}
        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": PRECISION, "PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
            config["ENABLE_CPU_PINNING"] = False  # pinned, two 1-thread models took the same core
        try:
            core = ov.Core()
            model = core.read_model(str(self.path))
            compiled = core.compile_model(model, self.device, config)
        except Exception as exc:  # openvino raises RuntimeError with C++ context
            raise EngineError(f"OpenVINO cannot load {self.label}: {first_line(exc)}") from exc
        inputs = [
            TensorMeta(p.get_any_name(), np.dtype(p.get_element_type().to_dtype()), _dims(p.get_partial_shape()))
            for p in model.inputs
        ]
        outputs = []
        for port in model.outputs:  # compiled ports may carry internal names; the model's carry the ONNX ones
            names = port.get_names() & graph_outputs
            outputs.append(
                TensorMeta(
                    min(names) if names else port.get_any_name(),
                    np.dtype(port.get_element_type().to_dtype()),
                    _dims(port.get_partial_shape()),
                )
            )
        self._compiled, self._request = compiled, compiled.create_infer_request()
        self.threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) or None  # what OpenVINO really uses
        self.pinned = bool(compiled.get_property("ENABLE_CPU_PINNING"))
        device = core.get_property(self.device, "FULL_DEVICE_NAME")
        return inputs, outputs, f"OpenVINO {ov.__version__.split('-')[0]} {self.device} ({device})"

    def _deactivate(self) -> None:
        self._request = self._compiled = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        assert self._request is not None
        try:
            results = self._request.infer(dict(feed))  # outputs are copies (share_outputs=False)
        except Exception as exc:
            raise EngineError(f"OpenVINO cannot run {self.label}: {first_line(exc)}") from exc
        return [results[port] for port in self._compiled.outputs]
