"""A PyTorch module behind the runner protocol.

The module comes populated and in eval mode (rebuilding it from an artifact's metadata and
weights is the exporter's job); this runner only runs it: numpy in, numpy out, under
``torch.no_grad``, on the CPU in fp32 unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from facebatch.configs.spec import BATCH, ModelSpec
from facebatch.engines.runners.base import Runner, TensorMeta, first_line
from facebatch.errors import EngineError

if TYPE_CHECKING:
    from torch import nn


class TorchRunner(Runner):
    """``with TorchRunner.from_spec(model, spec) as runner: runner.infer({"input.1": x})``."""

    def __init__(
        self,
        module: nn.Module,
        inputs: Sequence[TensorMeta],
        output_names: Sequence[str],
        label: str,
        device: str = "cpu",
    ) -> None:
        super().__init__(label)
        self.module = module
        self.device = device
        self._declared_inputs = tuple(inputs)
        self._output_names = tuple(output_names)

    @classmethod
    def single_input(cls, module: nn.Module, input_name: str, output_names: Sequence[str], label: str, device: str = "cpu") -> TorchRunner:
        """An NCHW float32 image input whose spatial dims are left open (the networks are
        convolutional: any size their granularity allows runs)."""
        return cls(module, [TensorMeta(input_name, np.dtype(np.float32), (BATCH, 3, None, None))], output_names, label, device)

    @classmethod
    def from_spec(cls, module: nn.Module, spec: ModelSpec, device: str = "cpu") -> TorchRunner:
        return cls.single_input(module, spec.input.name, spec.output_names, f"torch {spec.name}", device)

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        import torch  # heavy; imported on use

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"torch has no CUDA device here; run {self.label} with device 'cpu'")
        self.module = self.module.eval().to(self.device)
        outputs = [TensorMeta(name, np.dtype(np.float32), ()) for name in self._output_names]
        return self._declared_inputs, outputs, f"torch-{self.device}"

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = [torch.from_numpy(feed[m.name]).to(self.device) for m in self.inputs]
        try:
            with torch.no_grad():
                result = self.module(*tensors)
        except RuntimeError as exc:  # a shape the module cannot take
            raise EngineError(f"{self.label} cannot run: {first_line(exc)}") from exc
        values = result if isinstance(result, (tuple, list)) else (result,)
        if len(values) != len(self._output_names):
            raise EngineError(f"{self.label} returned {len(values)} outputs, the spec names {len(self._output_names)}")
        return [v.detach().cpu().numpy() for v in values]
