"""The runner factory extended with torch: the torch backend needs the model rebuilt from the
artifact's metadata and weights, which only the exporter can do; every other backend is the one
factory's (``facebatch.engines.runners.factory.make_onnx_runner``). Bench (in engines) receives this
factory and so runs torch like any other backend."""

from __future__ import annotations

from facebatch.configs.model_file import ModelFile
from facebatch.core.progress import step
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.engines.runners.torch_runner import TorchRunner
from facebatch.exporter.torch_reference import rebuild_torch_model


def make_runner(backend: str, model: ModelFile, size: tuple[int, int], options: RunnerOptions) -> Runner:
    """The ``RunnerFactory`` of every backend: torch here, the rest ``make_onnx_runner``'s."""
    if backend != "torch":
        return make_onnx_runner(backend, model, size, options)
    with step(f"rebuild the torch model of {model.path.name}"):
        torch_model, _ = rebuild_torch_model(model, None, None, ())
    # CUDA with FP16 autocast when there is a GPU, as deployments run it; the CPU in fp32
    return TorchRunner.from_spec(
        torch_model, model.spec, device="auto", fp16_autocast=True, threads=options.thread_count
    )
