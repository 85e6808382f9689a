"""onnxruntime behind the runner protocol; onnxruntime itself is imported on activation.

A model is a file or an in-memory ``onnx.ModelProto`` (verify runs edited copies, such as a
graph with its batch made symbolic, without writing them to disk).
``OnnxRuntimeIntermediateRunner`` adds the intermediate-tensor capability.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.availability import check_onnxruntime_install
from facebatch.engines.runners.base import Runner, TensorMeta, first_line

CPU = "CPUExecutionProvider"
# onnxruntime's type strings → numpy dtypes
ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def _meta(arg) -> TensorMeta:  # onnxruntime NodeArg
    dtype = ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise EngineError(f"tensor {arg.name} has type {arg.type}, which facebatch does not feed or read")
    shape = tuple(d if isinstance(d, (int, str)) else None for d in arg.shape)
    return TensorMeta(arg.name, np.dtype(dtype), shape)


ORT_WARNING, ORT_ERROR = 2, 3  # onnxruntime's log severities
# Graph rewrites that change what a graph computes, turned off in every session of ours so that a
# model runs as written, and as it was judged. WeightBiasQuantization (onnxruntime >= 1.20) stores in
# 8 bits, one scale per tensor, the float weights of any Conv between a DequantizeLinear and a
# QuantizeLinear: the convolutions an INT8 recipe keeps FP32 ran quantised, worse than if they had
# been quantised per channel (mobilefacenet_128d with its 17 depthwise convs kept FP32, on the
# fixture faces: min cosine to FP32 0.656 instead of 0.962; OpenVINO runs them FP32: 0.962).
ALTERING_OPTIMIZERS = ("WeightBiasQuantization",)


@contextlib.contextmanager
def onnxruntime_quiet() -> Iterator[None]:
    """onnxruntime's own C++ log held to errors while a tool that makes its own sessions runs (the
    quantiser's calibration prints graph clean-up notes such as CleanUnusedInitializersAndNodeArgs,
    in colour, before our lines; nothing a user acts on)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(ORT_ERROR)
    try:
        yield
    finally:
        ort.set_default_logger_severity(ORT_WARNING)


def session_options(intra_op_threads: int | None, spin_wait: bool = True):  # onnxruntime.SessionOptions
    """The session options every onnxruntime session of ours runs with (and a peer given the
    same, so that a comparison differs in nothing else): quiet, the thread count, spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    return options


class OnnxRuntimeRunner(Runner):
    """``with OnnxRuntimeRunner(path) as runner: outputs = runner.infer({"input.1": x})``.

    ``providers`` in order of preference, each a name or (name, options). The first one must
    really run: if onnxruntime lacks it, or starts another instead, that is an ``EngineError``
    saying what to install (``install_hint``), unless ``allow_fallback``; ``provider`` always
    says what ran, and ``precision`` what it computes in (the graph's, unless the provider
    that ran is told otherwise, e.g. TensorRT's fp16 mode)."""

    def __init__(
        self,
        model: Path | onnx.ModelProto,
        providers: Sequence[str | tuple[str, dict[str, object]]] = (CPU,),
        intra_op_threads: int | None = None,
        label: str | None = None,
        allow_fallback: bool = False,
        install_hint: str = "",
        precision: str = "fp32",
        precision_by_provider: Mapping[str, str] | None = None,
        spin_wait: bool = True,
    ) -> None:
        self.model = model if isinstance(model, onnx.ModelProto) else Path(model)
        default_label = self.model.name if isinstance(self.model, Path) else (model.graph.name or "in-memory graph")  # type: ignore[union-attr]
        super().__init__(label or default_label)
        self.providers = tuple(providers)
        self.intra_op_threads = intra_op_threads
        self.allow_fallback = allow_fallback
        self.install_hint = install_hint
        self.graph_precision = precision  # what the graph computes in (fp16 artifacts: "fp16")
        self.precision_by_provider = dict(precision_by_provider or {})  # e.g. TensorRT told to build fp16 kernels
        self.spin_wait = (
            spin_wait  # intra-op threads spin between calls: faster back-to-back, but two live sessions slow each other
        )
        self._session = None

    def _provider_names(self) -> list[str]:
        return [p if isinstance(p, str) else p[0] for p in self.providers]

    def _usable_providers(self, available: Sequence[str]) -> list:
        wanted = self._provider_names()[0]
        if wanted in available:
            return list(self.providers)
        if not self.allow_fallback:
            raise EngineError(
                f"onnxruntime here has no {wanted} (it has {', '.join(available)}); {self.install_hint or 'install a build that has it'}, "
                "or run on the CPU (the ort-cpu backend)"
            )
        return [CPU]

    def _model_source(self) -> str | bytes:
        if isinstance(self.model, Path):
            if not self.model.is_file():
                raise SpecError(f"ONNX file {self.model} does not exist")
            return str(self.model)
        return self.model.SerializeToString()

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        check_onnxruntime_install()  # two onnxruntimes in one environment overwrite each other's files
        import onnxruntime as ort  # heavy; imported on use

        source = self._model_source()
        options = session_options(self.intra_op_threads, self.spin_wait)
        providers = self._usable_providers(ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(
                source, options, providers=providers, disabled_optimizers=list(ALTERING_OPTIMIZERS)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"onnxruntime cannot load {self.label}: {first_line(exc)}") from exc
        session = self._session
        ran, wanted = session.get_providers()[0], self._provider_names()[0]
        if ran != wanted and not self.allow_fallback:  # onnxruntime itself fell back (e.g. no CUDA device or libraries)
            raise EngineError(
                f"onnxruntime could not start {wanted} for {self.label} and runs {ran} instead; "
                f"{self.install_hint or 'check the installation'}, or run on the CPU (the ort-cpu backend)"
            )
        self.precision = self.precision_by_provider.get(ran, self.graph_precision)
        self.threads = self.intra_op_threads
        inputs = [_meta(a) for a in session.get_inputs()]
        outputs = [_meta(a) for a in session.get_outputs()]
        return inputs, outputs, ran

    def _deactivate(self) -> None:
        self._session = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        assert self._session is not None
        try:
            return self._session.run(None, dict(feed))
        except Exception as exc:  # a shape the graph cannot take, a fixed batch, …
            raise EngineError(f"onnxruntime cannot run {self.label}: {first_line(exc)}") from exc


def every_tensor_as_output(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy whose graph outputs are its own outputs plus every float tensor a node
    computes (their shapes left open, so any batch runs); and those tensors' names in the
    order the nodes compute them."""
    exposed = copy.deepcopy(model)
    inferred = onnx.shape_inference.infer_shapes(exposed)
    floats = {
        v.name: v
        for v in list(inferred.graph.value_info) + list(inferred.graph.output)
        if v.type.tensor_type.elem_type in FLOAT_TYPES
    }
    existing = {o.name for o in exposed.graph.output}
    names = []
    for node in exposed.graph.node:
        for out in node.output:
            if out in existing:
                names.append(out)
            elif out in floats:
                value = copy.deepcopy(floats[out])
                value.type.tensor_type.ClearField("shape")
                exposed.graph.output.append(value)
                names.append(out)
    return exposed, names


class OnnxRuntimeIntermediateRunner(OnnxRuntimeRunner):
    """An onnxruntime runner that can also return every intermediate float tensor.

    ``infer`` keeps the protocol (the graph's own outputs only); ``infer_intermediates``
    returns every tensor in ``intermediate_names``, in the order the graph computes them.
    """

    def __init__(self, model: onnx.ModelProto, providers: Sequence[str] = (CPU,), label: str | None = None) -> None:
        self._graph_outputs = [o.name for o in model.graph.output]
        exposed, self.intermediate_names = every_tensor_as_output(model)
        super().__init__(exposed, providers, label=label or model.graph.name or "in-memory graph")

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        inputs, outputs, provider = super()._activate()
        self._all_outputs = [m.name for m in outputs]
        return inputs, [m for m in outputs if m.name in self._graph_outputs], provider

    def _run_all(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._all_outputs, super()._infer(feed), strict=False))

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        every = self._run_all(feed)
        return [every[name] for name in self.output_names]

    def infer_intermediates(self, feed: Mapping[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        every = self._checked_and_timed(self._run_all, feed, check_inputs)
        return {name: every[name] for name in self.intermediate_names}
