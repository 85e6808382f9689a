"""OpenVINO on the CPU behind the runner protocol; openvino itself is imported on activation.

The ONNX file is read directly (no conversion step) with its symbolic batch kept dynamic.
Precision is pinned to f32: OpenVINO's CPU plugin otherwise picks bf16 on CPUs that have it
(2–3× faster here, with other numbers), which would make a comparison with onnxruntime's
fp32 meaningless. Threads are explicit, like onnxruntime's; where a count is given, other work
shares the cores (the pipeline's lanes and readers), so OpenVINO's pinning of its threads to
cores is turned off: two pipeline lanes of pinned 1-thread models ran 7.0 photos/s on the fixture
photos, unpinned 12.1 (one lane of 2 threads: 12.6).

``precision`` "bf16" asks for bfloat16 compute (FP32's range, an 8-bit mantissa) on a CPU whose
OpenVINO capabilities list BF16 (``OpenVinoCpu``); the pipeline asks for it only where a recorded
proof passed for the model on this CPU class (facebatch.workflows.bf16_record).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.core.environment import cpu_flags, file_sha256
from facebatch.core.errors import EngineError, SpecError
from facebatch.core.onnx_graph import load_onnx
from facebatch.engines.runners.base import Runner, TensorMeta, first_line
from facebatch.engines.runners.compile_cache import CompileCache

INSTALL_HINT = "pip install 'facebatch[openvino]'"
PRECISION = "f32"  # the default: comparable with onnxruntime's fp32
PRECISIONS = ("f32", "bf16")  # what INFERENCE_PRECISION_HINT is given
BF16_CAPABILITY = "BF16"  # in the CPU's OPTIMIZATION_CAPABILITIES where OpenVINO runs bf16


def bf16_cpu_class(flags: set[str] | None = None) -> str:
    """Which bf16 kernels a CPU has: ``amx`` (AMX tiles), ``avx512_bf16`` (AVX-512 dot products) or ``none``.
    A BF16 proof holds for the class it was measured on (other kernels round and sum differently)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


@dataclass(frozen=True)
class OpenVinoCpu:
    """What OpenVINO says of this CPU, as plain data (a test states the CPU it means): its version (None where
    OpenVINO is not installed), the CPU's optimisation capabilities, its name and bf16 class."""

    version: str | None
    capabilities: tuple[str, ...] = ()
    name: str = ""
    bf16_class: str = "none"

    @property
    def bf16(self) -> bool:
        return self.version is not None and BF16_CAPABILITY in self.capabilities

    def bf16_problem(self) -> str | None:
        """Why a model cannot run in BF16 here, in one line; None where it can."""
        if self.version is None:
            return f"BF16 runs on OpenVINO, which is not installed: {INSTALL_HINT}"
        if not self.bf16:
            listed = ", ".join(self.capabilities) or "nothing"
            return f"this CPU ({self.name or 'unnamed'}) has no BF16 in OpenVINO's capabilities (it lists {listed})"
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "bf16_class": self.bf16_class,
            "capabilities": list(self.capabilities),
            "openvino": self.version,
        }


@functools.cache
def detect_openvino_cpu() -> OpenVinoCpu:
    """OpenVINO's view of this CPU, read once."""
    try:
        import openvino as ov
    except ImportError:
        return OpenVinoCpu(None)
    core = ov.Core()
    return OpenVinoCpu(
        ov.__version__.split("-")[0],
        tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        str(core.get_property("CPU", "FULL_DEVICE_NAME")),
        bf16_cpu_class(),
    )


def _dims(partial_shape) -> tuple[int | None, ...]:  # openvino PartialShape
    return tuple(d.get_length() if d.is_static else None for d in partial_shape)


class OpenVinoRunner(Runner):
    """``with OpenVinoRunner(path, threads=2) as runner: runner.infer({"input.1": x})``."""

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        device: str = "CPU",
        label: str | None = None,
        cache: CompileCache | None = None,
        precision: str = PRECISION,
    ) -> None:
        if precision not in PRECISIONS:
            raise SpecError(
                f"OpenVINO precision {precision!r} is not one of {', '.join(PRECISIONS)}", field="precision"
            )
        self.path = Path(path)
        super().__init__(label or self.path.name)
        self.threads = threads
        self.device = device
        self.inference_precision = precision  # INFERENCE_PRECISION_HINT
        if precision != PRECISION:
            self.precision = precision  # the label reports and tables show
        self.cache = cache  # where compiled models are kept between runs (None: compiled every time)
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
        config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
            config["ENABLE_CPU_PINNING"] = False  # pinned, two 1-thread models took the same core
        try:
            core = ov.Core()
            model = core.read_model(str(self.path))
            if self.cache is not None:
                compiled = self.cache.compile(core, model, file_sha256(self.path), self.device, config)
            else:
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
        if len(compiled.outputs) != len(outputs):  # results are read by position, named by the model's ports
            raise EngineError(
                f"OpenVINO compiled {self.label} with {len(compiled.outputs)} outputs, not {len(outputs)}"
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
