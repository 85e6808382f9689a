"""A model on a running Triton server behind the runner protocol, through tritonclient
(HTTP or gRPC): what the served-model bench times and the serving tests compare.

    with TritonClientRunner("localhost:8000", "face_pipeline") as runner:
        runner.infer({"IMAGES": photos})

The inputs and outputs come from the server's model metadata; a model with a batch axis
(max_batch_size > 0) gets the ``batch`` symbol on its first axis. tritonclient is imported on
activation (extra ``serve``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.base import Runner, TensorMeta, first_line

SERVE_HINT = "pip install 'facebatch[serve]' (tritonclient[http,grpc])"
# Triton's wire types → numpy
WIRE_TYPES = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
    "BYTES": np.object_,
}
WIRE_NAMES = {np.dtype(dtype): name for name, dtype in WIRE_TYPES.items()}
PROTOCOLS = ("http", "grpc")


def parse_triton_url(url: str) -> tuple[str, str]:
    """``grpc://host:8001`` / ``http://host:8000`` / ``host:8000`` (HTTP) → (protocol, host:port)."""
    protocol, _, rest = url.partition("://")
    if not rest:
        protocol, rest = "http", url
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise SpecError(f"triton URL {url}: the scheme must be http:// or grpc://", field="triton")
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(
            f"triton URL {url}: give host:port, e.g. localhost:8000 (HTTP) or grpc://localhost:8001", field="triton"
        )
    return protocol, rest.rstrip("/")


def _client_module(protocol: str) -> Any:  # tritonclient.http or tritonclient.grpc
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError:
        raise SpecError(f"talking to Triton needs tritonclient: {SERVE_HINT}") from None
    return module


class TritonClientRunner(Runner):
    """One client connection to one served model; each ``infer`` is one request."""

    def __init__(self, url: str, model: str, timeout_s: float = 120.0) -> None:
        self.protocol, self.address = parse_triton_url(url)
        super().__init__(f"{model} at {self.protocol}://{self.address}")
        self.model = model
        self.timeout_s = timeout_s
        self.max_batch_size = 0
        self._module: Any = None
        self._client: Any = None

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        module = self._module = _client_module(self.protocol)
        try:
            if self.protocol == "grpc":
                self._client = module.InferenceServerClient(self.address)
            else:  # one connection: a runner is used by one thread at a time
                self._client = module.InferenceServerClient(
                    self.address, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            if not self._client.is_server_ready():
                raise EngineError(f"Triton at {self.address} is up but not ready")
            if not self._client.is_model_ready(self.model):
                # the ready models, from the statistics API: the repository index is restricted on facebatch serve
                served = ", ".join(sorted(self.statistics())) or "none"
                raise SpecError(
                    f"Triton at {self.address} serves no ready model {self.model!r} (it has: {served}); pick one of those",
                    field="model",
                )
            metadata = self._as_dict(self._client.get_model_metadata(self.model))
            config = self._as_dict(self._client.get_model_config(self.model))
        except (EngineError, SpecError):
            self._close()
            raise
        except Exception as exc:  # tritonclient's and the transports' own errors
            self._close()
            raise EngineError(f"cannot reach Triton at {self.protocol}://{self.address}: {first_line(exc)}") from None
        config = config.get("config", config)  # gRPC wraps it
        self.max_batch_size = int(config.get("max_batch_size", 0))
        return self._metas(metadata["inputs"]), self._metas(metadata["outputs"]), f"triton-{self.protocol}"

    def _as_dict(self, answer: Any) -> dict[str, Any]:  # a dict (HTTP) or a protobuf message (gRPC)
        if isinstance(answer, dict):
            return answer
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(answer, preserving_proto_field_name=True)

    def _metas(self, tensors: list[dict[str, Any]]) -> list[TensorMeta]:
        metas = []
        for tensor in tensors:
            dtype = WIRE_TYPES.get(tensor["datatype"])
            if dtype is None:
                raise EngineError(
                    f"{self.label}: tensor {tensor['name']} has Triton type {tensor['datatype']}, which facebatch does not send"
                )
            shape: list[int | str | None] = [int(d) if int(d) >= 0 else None for d in tensor["shape"]]
            if self.max_batch_size > 0 and shape:
                shape[0] = "batch"
            metas.append(TensorMeta(tensor["name"], np.dtype(dtype), tuple(shape)))
        return metas

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        module = self._module
        inputs = []
        for name, array in feed.items():
            wire = WIRE_NAMES[np.dtype(array.dtype)]
            item = module.InferInput(name, list(array.shape), wire)
            item.set_data_from_numpy(array)
            inputs.append(item)
        outputs = [module.InferRequestedOutput(name) for name in self.output_names]
        try:
            result = self._client.infer(self.model, inputs, outputs=outputs)
        except Exception as exc:  # InferenceServerException and transport errors
            raise EngineError(f"{self.label}: {first_line(exc)}") from None
        return [result.as_numpy(name) for name in self.output_names]

    def statistics(self) -> dict[str, dict[str, int]]:
        """Per served model, as Triton counts them: ``requests`` answered, ``inference_count``
        (batch rows inferred) and ``execution_count`` (model runs). Fewer executions than
        requests means the dynamic batcher merged requests."""
        answer = self._as_dict(self._client.get_inference_statistics(""))
        counts = {}
        for stats in answer.get("model_stats", []):
            success = stats.get("inference_stats", {}).get("success", {})
            counts[stats["name"]] = {
                "requests": int(success.get("count", 0)),
                "inference_count": int(stats.get("inference_count", 0)),
                "execution_count": int(stats.get("execution_count", 0)),
            }
        return counts

    def _close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def _deactivate(self) -> None:
        self._close()
