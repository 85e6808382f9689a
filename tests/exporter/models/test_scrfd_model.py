"""The PyTorch SCRFD: checkpoint names and shapes, parameter counts, output layout."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facebatch.configs.scrfd import SCRFD_CONFIGS
from facebatch.exporter.models.scrfd import scrfd_from_variant, seeded_init
from facebatch.exporter.weights.checkpoint import load_state_dict_strict
from tests.configs.test_scrfd_configs import PUBLISHED_PARAMS_M


def _reference_keys(keys_dir: Path, variant: str) -> dict[str, tuple[int, ...]]:
    lines = (keys_dir / f"{variant}.txt").read_text().splitlines()
    entries = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return {key: tuple(int(d) for d in shape.strip("[]").split(",") if d.strip()) for key, shape in entries}


def test_every_variant_has_a_reference_key_list(keys_dir: Path):
    assert {p.stem for p in keys_dir.glob("*.txt")} == set(SCRFD_CONFIGS)


@pytest.mark.parametrize("variant", list(SCRFD_CONFIGS))
def test_state_dict_matches_mmdet_checkpoint_keys(keys_dir: Path, variant: str):
    ours = {k: tuple(v.shape) for k, v in scrfd_from_variant(variant).state_dict().items()}
    assert ours == _reference_keys(keys_dir, variant)


@pytest.mark.parametrize("variant", list(SCRFD_CONFIGS))
def test_parameter_count_equals_published(variant: str):
    params = sum(p.numel() for p in scrfd_from_variant(variant).parameters())
    assert round(params / 1e6, 3) == PUBLISHED_PARAMS_M[variant]


@pytest.mark.parametrize("variant", ["scrfd_500m_bnkps", "scrfd_2.5g", "scrfd_34g"])
def test_checkpoint_keyed_like_mmdet_loads_strictly(keys_dir: Path, variant: str):
    """A state dict built from the reference key list (the names an mmdet .pth carries)."""
    generator = torch.Generator().manual_seed(1)
    state = {
        k: torch.randn(shape, generator=generator) if shape else torch.tensor(1.0)
        for k, shape in _reference_keys(keys_dir, variant).items()
    }
    state = {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in state.items()}
    model = scrfd_from_variant(variant)
    load_state_dict_strict(model, state, "reference keys")
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, state[key].to(value.dtype))


@pytest.mark.parametrize("variant", ["scrfd_500m", "scrfd_10g_bnkps"])
def test_outputs_keep_the_batch_and_frames_stay_independent(variant: str):
    # float64: batched and single-frame convolutions pick different kernels, whose float32 rounding differs by ~1e-5 on
    # AVX2 CPUs (1.13e-5 measured for scrfd_10g_bnkps); in float64 a frame inside a batch equals it alone to 1e-12
    model = seeded_init(scrfd_from_variant(variant)).double()
    frames = torch.randn(3, 3, 128, 96, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        batched = model(frames)
        alone = model(frames[1:2])
    rows = {8: 16 * 12 * 2, 16: 8 * 6 * 2, 32: 4 * 3 * 2}
    for name, out, single in zip(model.layout.output_names(), batched, alone, strict=False):
        kind, stride = name.split("_")
        assert out.shape == (3, rows[int(stride)], {"score": 1, "bbox": 4, "kps": 10}[kind])
        np.testing.assert_allclose(out[1:2].numpy(), single.numpy(), rtol=0, atol=1e-10)


def test_scores_are_probabilities_and_scales_only_touch_boxes():
    model = seeded_init(scrfd_from_variant("scrfd_2.5g_bnkps"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.bbox_head.scales[0].scale.mul_(2.0)
        after = model(x)
    assert all(((o >= 0) & (o <= 1)).all() for o in before[:3])
    torch.testing.assert_close(after[3], before[3] * 2.0)  # bbox_8 doubled
    torch.testing.assert_close(after[6], before[6])  # kps_8 untouched
    torch.testing.assert_close(after[0], before[0])  # score_8 untouched


def test_seeded_init_is_deterministic():
    a = seeded_init(scrfd_from_variant("scrfd_500m"), seed=5).state_dict()
    b = seeded_init(scrfd_from_variant("scrfd_500m"), seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
