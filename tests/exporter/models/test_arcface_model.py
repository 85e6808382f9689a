"""IResNet r18–r200 and MobileFaceNet mbf: arcface_torch key names and shapes (built here
independently from the facts sheet, §5.2–§5.3), published sizes, strict loading of a bare
``backbone.pth`` state dict with weights_only=True, and refusals that list what is wrong."""

from pathlib import Path

import pytest
import torch

from facebatch.configs.arcface import ARCFACE_CONFIGS
from facebatch.core.errors import WeightsError
from facebatch.exporter.models.arcface import build_arcface, seeded_arcface
from facebatch.exporter.weights.checkpoint import load_state_dict_strict, read_state_dict

# state-dict entries and parameters (millions) as arcface_torch's backbones publish them
PUBLISHED = {
    "r18": (187, 24.03),
    "r34": (331, 34.14),
    "r50": (475, 43.59),
    "r100": (925, 65.16),
    "r200": (1807, 118.83),
    "mbf": (333, 2.06),
}
LAYERS = {
    "r18": (2, 2, 2, 2),
    "r34": (3, 4, 6, 3),
    "r50": (3, 4, 14, 3),
    "r100": (3, 13, 30, 3),
    "r200": (6, 26, 60, 6),
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def iresnet_keys_from_facts(layers: tuple[int, ...]) -> dict[str, tuple[int, ...] | None]:
    """Key → shape (None for num_batches_tracked) exactly as arcface_torch's iresnet.py state dict has them."""
    keys: dict[str, tuple[int, ...] | None] = {"conv1.weight": (64, 3, 3, 3), "prelu.weight": (64,)}
    keys |= {f"bn1.{k}": None if k == "num_batches_tracked" else (64,) for k in BN}
    inplanes = 64
    for stage, (blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512), strict=False), start=1):
        for j in range(blocks):
            p = f"layer{stage}.{j}"
            cin = inplanes if j == 0 else planes
            keys |= {f"{p}.bn1.{k}": None if k == "num_batches_tracked" else (cin,) for k in BN}
            keys[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            keys |= {f"{p}.bn2.{k}": None if k == "num_batches_tracked" else (planes,) for k in BN}
            keys[f"{p}.prelu.weight"] = (planes,)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys |= {f"{p}.bn3.{k}": None if k == "num_batches_tracked" else (planes,) for k in BN}
            if j == 0:
                keys[f"{p}.downsample.0.weight"] = (planes, cin, 1, 1)
                keys |= {f"{p}.downsample.1.{k}": None if k == "num_batches_tracked" else (planes,) for k in BN}
        inplanes = planes
    keys |= {f"bn2.{k}": None if k == "num_batches_tracked" else (512,) for k in BN}
    keys |= {"fc.weight": (512, 25088), "fc.bias": (512,)}
    keys |= {f"features.{k}": None if k == "num_batches_tracked" else (512,) for k in BN}
    return keys


@pytest.mark.parametrize("network", list(ARCFACE_CONFIGS))
def test_published_sizes(network: str):
    model = build_arcface(network)
    entries, params = PUBLISHED[network]
    assert len(model.state_dict()) == entries
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == pytest.approx(params, abs=0.005)


@pytest.mark.parametrize("network", list(LAYERS))
def test_iresnet_keys_and_shapes_match_the_facts(network: str):
    state = build_arcface(network).state_dict()
    expected = iresnet_keys_from_facts(LAYERS[network])
    assert set(state) == set(expected)
    for key, shape in expected.items():
        if shape is not None:
            assert tuple(state[key].shape) == shape, key


def test_mbf_key_examples_and_shapes_match_the_facts():
    state = build_arcface("mbf").state_dict()
    shapes = {
        "layers.0.layers.0.weight": (128, 3, 3, 3),
        "layers.1.layers.0.weight": (128, 2, 3, 3),  # groups=64
        "layers.2.layers.0.layers.0.weight": (128, 128, 1, 1),
        "layers.2.layers.1.layers.0.weight": (128, 1, 3, 3),
        "layers.3.layers.3.layers.2.layers.0.weight": (128, 128, 1, 1),
        "layers.4.layers.0.layers.0.weight": (256, 128, 1, 1),
        "layers.6.layers.0.layers.0.weight": (512, 256, 1, 1),
        "layers.6.layers.2.layers.0.weight": (256, 512, 1, 1),
        "layers.7.layers.1.layers.1.layers.0.weight": (256, 1, 3, 3),
        "conv_sep.layers.0.weight": (512, 256, 1, 1),
        "features.layers.0.layers.0.weight": (512, 1, 7, 7),
        "features.layers.2.weight": (512, 512),
        "features.layers.3.running_var": (512,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "features.layers.2.bias" not in state  # Linear without bias


@pytest.mark.parametrize("network", list(ARCFACE_CONFIGS))
def test_bare_backbone_pth_loads_strictly(network: str, tmp_path: Path):
    """An arcface_torch backbone.pth is a bare state dict; keys built from the facts (IResNet)
    or saved from another instance (mbf) load with strict=True and weights_only=True."""
    source = seeded_arcface(build_arcface(network), seed=3)
    path = tmp_path / "backbone.pth"
    torch.save(source.state_dict(), path)
    state = read_state_dict(path)
    if network in LAYERS:
        assert set(state) == set(iresnet_keys_from_facts(LAYERS[network]))
    target = build_arcface(network)
    load_state_dict_strict(target, state, path.name)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


def test_wrong_network_lists_missing_unexpected_and_mismatched_keys(tmp_path: Path):
    path = tmp_path / "backbone.pth"
    torch.save(build_arcface("r34").state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_state_dict_strict(build_arcface("r50"), read_state_dict(path), path.name)
    message = str(info.value)
    assert "120 missing keys: layer3.10.bn1.bias" in message and "backbone.pth does not fit" in message
    torch.save(build_arcface("mbf").state_dict(), path)
    with pytest.raises(WeightsError, match="unexpected keys: conv_sep"):
        load_state_dict_strict(build_arcface("r18"), read_state_dict(path), path.name)


def test_embeddings_keep_the_batch_and_frames_stay_independent():
    """In float64, so that what is measured is the model and not oneDNN picking other fp32
    kernels per batch size (which moves r18's outputs, of magnitude ~10, by ~1e-5)."""
    model = seeded_arcface(build_arcface("r18"), seed=1).double()
    frames = torch.randn(5, 3, 112, 112, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        together = model(frames)
        alone = torch.cat([model(f[None]) for f in frames])
    assert together.shape == (5, 512)
    assert torch.allclose(together, alone, rtol=0, atol=1e-9)
