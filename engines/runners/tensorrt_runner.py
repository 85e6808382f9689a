"""A TensorRT engine (``.plan`` from ``facebatch build``) behind the runner protocol.

TensorRT and Polygraphy's CUDA wrapper are imported on activation, so this module loads
anywhere. On activation the plan's sidecar is checked against this machine (TensorRT
version, compute capability: ``check_engine_compatible`` names both sides), the engine is
deserialised, and device buffers are allocated once for the profile's largest shapes. Each
call sets the input shapes, copies in on a CUDA stream, runs ``execute_async_v3``, copies
out and synchronises. Written for TensorRT 10 and later (the named-tensor API).
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facebatch.configs.spec import BATCH
from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.base import Runner, TensorMeta, first_line
from facebatch.engines.runners.engine_record import EngineRecord, GpuInfo, check_engine_compatible, read_engine_record

TENSORRT_HINT = (
    "TensorRT engines need a CUDA GPU with TensorRT and Polygraphy: pip install 'facebatch[tensorrt]' "
    "(TensorRT's wheels come from NVIDIA's package index)"
)
CUDA_DEV_ATTR_CC_MAJOR, CUDA_DEV_ATTR_CC_MINOR = 75, 76  # cudaDeviceAttr values


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("polygraphy") is not None


def import_tensorrt():  # the tensorrt module
    if not tensorrt_available():
        raise SpecError(f"TensorRT is not installed here: {TENSORRT_HINT}")
    try:
        import tensorrt as trt
    except Exception as exc:  # a broken install (missing CUDA libraries) fails on import
        raise EngineError(f"TensorRT cannot be loaded: {first_line(exc)}") from None
    return trt


def current_gpu(device: int = 0) -> GpuInfo:
    """Name and compute capability of the CUDA device, through the CUDA runtime that
    Polygraphy's wrapper has loaded."""
    try:
        from polygraphy import cuda

        handle = cuda.wrapper().handle
        major, minor = ctypes.c_int(), ctypes.c_int()
        for value, attribute in ((major, CUDA_DEV_ATTR_CC_MAJOR), (minor, CUDA_DEV_ATTR_CC_MINOR)):
            if handle.cudaDeviceGetAttribute(ctypes.byref(value), attribute, device) != 0:
                raise EngineError("cudaDeviceGetAttribute failed: is there a CUDA GPU?")
        properties = ctypes.create_string_buffer(4096)  # cudaDeviceProp starts with char name[256]
        get = getattr(handle, "cudaGetDeviceProperties_v2", None) or handle.cudaGetDeviceProperties
        name = (
            properties.raw[:256].split(b"\0")[0].decode(errors="replace")
            if get(properties, device) == 0
            else "unknown GPU"
        )
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"cannot query the CUDA device: {first_line(exc)}") from None
    return GpuInfo(name, f"{major.value}.{minor.value}")


class TensorRtRunner(Runner):
    """``with TensorRtRunner(plan) as runner: runner.infer({"input.1": frames})``."""

    def __init__(self, plan: Path, record: EngineRecord | None = None, label: str | None = None) -> None:
        self.plan = Path(plan)
        super().__init__(label or self.plan.name)
        self.record = record if record is not None else read_engine_record(self.plan)
        self.precision = self.record.precision.value
        self._context = None
        self._buffers: dict = {}

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        trt = import_tensorrt()
        from polygraphy import cuda
        from polygraphy.datatype import DataType

        gpu = current_gpu()
        check_engine_compatible(self.record, trt.__version__, gpu)
        runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
        engine = runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if engine is None:
            raise EngineError(f"TensorRT cannot deserialise {self.label}; rebuild it")
        context = engine.create_execution_context()
        inputs, outputs = [], []
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            dims = tuple(
                BATCH if (axis == 0 and d < 0) else (None if d < 0 else int(d))
                for axis, d in enumerate(engine.get_tensor_shape(name))
            )
            meta = TensorMeta(name, np.dtype(trt.nptype(engine.get_tensor_dtype(name))), dims)
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(meta)
        for meta in inputs:  # the profile's largest shapes, so no call ever allocates
            largest = tuple(engine.get_tensor_profile_shape(meta.name, 0)[2])
            context.set_input_shape(meta.name, largest)
            self._buffers[meta.name] = cuda.DeviceArray(shape=largest, dtype=DataType.from_dtype(meta.dtype))
        for meta in outputs:
            self._buffers[meta.name] = cuda.DeviceArray(
                shape=tuple(context.get_tensor_shape(meta.name)), dtype=DataType.from_dtype(meta.dtype)
            )
        self._engine, self._context, self._stream = engine, context, cuda.Stream()
        return (
            inputs,
            outputs,
            f"TensorRT {trt.__version__} on {gpu.name} (compute capability {gpu.compute_capability})",
        )

    def _deactivate(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers = {}
        if self._context is not None:
            self._stream.free()
        self._context = self._engine = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        context, stream = self._context, self._stream
        for meta in self.inputs:
            array = feed[meta.name]
            buffer = self._buffers[meta.name].resize(array.shape)  # within the allocation: no new memory
            buffer.copy_from(array, stream)
            if not context.set_input_shape(meta.name, array.shape):
                raise SpecError(
                    f"{self.label}: input {meta.name} shape {list(array.shape)} is outside the engine's profile "
                    f"{self.record.profile.to_dict()['shapes'].get(meta.name)}"
                )
            context.set_tensor_address(meta.name, buffer.ptr)
        shapes = []
        for meta in self.outputs:
            shape = tuple(context.get_tensor_shape(meta.name))
            context.set_tensor_address(meta.name, self._buffers[meta.name].resize(shape).ptr)
            shapes.append(shape)
        if not context.execute_async_v3(stream.ptr):
            raise EngineError(f"TensorRT failed to run {self.label}")
        results = [np.empty(shape, dtype=meta.dtype) for shape, meta in zip(shapes, self.outputs, strict=False)]
        for host, meta in zip(results, self.outputs, strict=False):
            self._buffers[meta.name].copy_to(host, stream)
        stream.synchronize()
        return results
