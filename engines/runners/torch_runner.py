"""A PyTorch module behind the runner protocol.

The module comes populated and in eval mode (rebuilding it from an artifact's metadata and
weights is the exporter's job); this runner only runs it: numpy in, numpy out, under
``torch.no_grad``, on the CPU in fp32 unless told otherwise. ``device="auto"`` takes CUDA
when there is a GPU; ``fp16_autocast`` then runs it under FP16 autocast (benchmarks). Outputs
are copied back to the host inside the timed call, which synchronises the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from facebatch.configs.spec import BATCH, ModelSpec
from facebatch.core.errors import EngineError
from facebatch.engines.runners.base import Runner, TensorMeta, first_line

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
        fp16_autocast: bool = False,
        threads: int | None = None,
    ) -> None:
        super().__init__(label)
        self.module = module
        self.device = device
        self.fp16_autocast = fp16_autocast
        self.threads = threads  # CPU threads (torch's setting is process-wide)
        self._declared_inputs = tuple(inputs)
        self._output_names = tuple(output_names)

    @classmethod
    def single_input(
        cls,
        module: nn.Module,
        input_name: str,
        output_names: Sequence[str],
        label: str,
        device: str = "cpu",
        fp16_autocast: bool = False,
    ) -> TorchRunner:
        """An NCHW float32 image input whose spatial dims are left open (the networks are
        convolutional: any size their granularity allows runs)."""
        meta = TensorMeta(input_name, np.dtype(np.float32), (BATCH, 3, None, None))
        return cls(module, [meta], output_names, label, device, fp16_autocast)

    @classmethod
    def from_spec(
        cls,
        module: nn.Module,
        spec: ModelSpec,
        device: str = "cpu",
        fp16_autocast: bool = False,
        threads: int | None = None,
    ) -> TorchRunner:
        runner = cls.single_input(
            module, spec.input.name, spec.output_names, f"torch {spec.name}", device, fp16_autocast
        )
        runner.threads = threads
        return runner

    def _activate(self) -> tuple[Sequence[TensorMeta], Sequence[TensorMeta], str]:
        import torch  # heavy; imported on use

        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        cuda = self.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise EngineError(f"torch has no CUDA device here; run {self.label} with device 'cpu'")
        if self.threads and not cuda:
            torch.set_num_threads(self.threads)
        self.module = self.module.eval().to(self.device)
        self.fp16_autocast = self.fp16_autocast and cuda  # CPU runs stay fp32
        self.precision = "fp16 (autocast)" if self.fp16_autocast else "fp32"
        outputs = [TensorMeta(name, np.dtype(np.float32), ()) for name in self._output_names]
        self.threads = None if cuda else torch.get_num_threads()
        where = f"torch-{self.device} ({torch.cuda.get_device_name(self.device)})" if cuda else "torch-cpu"
        return self._declared_inputs, outputs, where

    def _infer(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = [torch.from_numpy(feed[m.name]).to(self.device) for m in self.inputs]
        try:
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16_autocast):
                result = self.module(*tensors)
        except RuntimeError as exc:  # a shape the module cannot take
            raise EngineError(f"{self.label} cannot run: {first_line(exc)}") from exc
        values = result if isinstance(result, (tuple, list)) else (result,)
        if len(values) != len(self._output_names):
            raise EngineError(f"{self.label} returned {len(values)} outputs, the spec names {len(self._output_names)}")
        return [v.detach().float().cpu().numpy() for v in values]  # to the host: this waits for the device
