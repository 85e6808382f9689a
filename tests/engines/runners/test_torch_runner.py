"""The torch runner: a populated module behind the same protocol, outputs by the spec's names."""

import numpy as np
import pytest
import torch
from torch import nn

from facebatch.configs.arcface import arcface_spec
from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.torch_runner import TorchRunner


class TwoOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean(dim=(2, 3)), x.flatten(1)


def test_outputs_are_named_and_any_spatial_size_runs():
    with TorchRunner.single_input(TwoOutputs(), "image", ["mean", "flat"], "two") as runner:
        assert (
            runner.provider == "torch-cpu"
            and runner.threads
            and runner.precision == "fp32"
            and runner.input_names == ["image"]
        )
        for size in (4, 7):
            x = np.random.default_rng(size).standard_normal((2, 3, size, size)).astype(np.float32)
            out = runner.infer({"image": x})
            np.testing.assert_allclose(out["mean"], x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
            assert out["flat"].shape == (2, 3 * size * size)
        with pytest.raises(SpecError, match="rank 3, not 4"):
            runner.infer({"image": np.zeros((3, 4, 4), np.float32)})


def test_a_spec_names_the_tensors_and_a_mismatch_is_an_engine_error():
    spec = arcface_spec("mbf", 4)
    with TorchRunner.from_spec(TwoOutputs(), spec) as runner:  # two outputs, the spec names one
        assert runner.label == "torch arcface_mbf" and runner.input_names == ["input.1"]
        with pytest.raises(EngineError, match="returned 2 outputs, the spec names 1"):
            runner.infer({"input.1": np.zeros((1, 3, 4, 4), np.float32)})
    with TorchRunner.from_spec(nn.Conv2d(4, 1, 1), spec) as runner:  # 3 channels into a 4-channel conv
        with pytest.raises(EngineError, match="cannot run"):
            runner.infer({"input.1": np.zeros((1, 3, 4, 4), np.float32)})
