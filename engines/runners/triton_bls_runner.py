"""Another model of the same Triton server behind the runner protocol, called through the
python backend's BLS (business logic scripting): how the served face pipeline reaches the
served detector and embedder, so their dynamic batchers merge the calls of every instance.

The python backend's utilities module (``triton_python_backend_utils``) exists only inside
Triton's python stub; the model code hands it in as ``backend``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from facebatch.core.errors import EngineError
from facebatch.engines.runners.base import Runner, TensorMeta

BLS = "triton-bls"


class TritonBlsRunner(Runner):
    """``infer`` sends one BLS request to ``model`` and returns its outputs; the tensors are
    declared by the caller (from the served config), since a python model cannot read
    another model's config."""

    def __init__(self, backend: Any, model: str, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta]) -> None:
        super().__init__(model)
        self.backend = backend
        self.model = model
        self._declared = (tuple(inputs), tuple(outputs))

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        return self._declared[0], self._declared[1], BLS

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        backend = self.backend
        request = backend.InferenceRequest(
            model_name=self.model,
            requested_output_names=self.output_names,
            inputs=[backend.Tensor(name, array) for name, array in feed.items()],
        )
        response = request.exec()
        if response.has_error():
            raise EngineError(f"Triton model {self.model} failed: {response.error().message()}")
        outputs = []
        for name in self.output_names:
            tensor = backend.get_output_tensor_by_name(response, name)
            if tensor is None:
                raise EngineError(f"Triton model {self.model} returned no output {name!r}")
            outputs.append(tensor.as_numpy())
        return outputs
