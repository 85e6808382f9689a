"""mmdet .pth / bare state-dict loading: weights_only, strict, every mismatch listed."""

import os
import pickle
from pathlib import Path

import pytest
import torch

from facebatch.core.errors import WeightsError
from facebatch.exporter.models.scrfd import scrfd_from_variant, seeded_init
from facebatch.exporter.weights.checkpoint import load_state_dict_strict, read_state_dict


class NotATensor:  # a class a weights_only unpickler must refuse
    pass


@pytest.fixture(scope="module")
def trained_like() -> dict[str, torch.Tensor]:
    return seeded_init(scrfd_from_variant("scrfd_500m_bnkps"), seed=9).state_dict()


def test_mmdet_container_and_bare_state_dict_load(tmp_path: Path, trained_like):
    mmdet = tmp_path / "scrfd_500m_bnkps.pth"
    torch.save(
        {
            "meta": {"epoch": 640, "mmcv_version": "1.3.3", "config": "model = dict(...)"},
            "state_dict": trained_like,
            "optimizer": {"state": {}, "param_groups": []},
        },
        mmdet,
    )
    bare = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in trained_like.items()}, bare)  # DataParallel prefix
    for path in (mmdet, bare):
        model = scrfd_from_variant("scrfd_500m_bnkps")
        load_state_dict_strict(model, read_state_dict(path), path.name)
        assert all(torch.equal(model.state_dict()[k], trained_like[k]) for k in trained_like)


def test_every_mismatch_is_listed(trained_like):
    state = dict(trained_like)
    del state["backbone.stem.0.0.weight"]
    state["bbox_head.extra.weight"] = torch.zeros(1)
    state["neck.lateral_convs.0.conv.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(WeightsError) as info:
        load_state_dict_strict(scrfd_from_variant("scrfd_500m_bnkps"), state, "x.pth")
    message = str(info.value)
    assert "1 missing keys: backbone.stem.0.0.weight" in message
    assert "1 unexpected keys: bbox_head.extra.weight" in message
    assert "neck.lateral_convs.0.conv.weight [3, 3, 1, 1] vs [16, 72, 1, 1]" in message


def test_wrong_variant_is_refused(trained_like):
    with pytest.raises(WeightsError, match="does not fit the model: .*missing keys"):
        load_state_dict_strict(scrfd_from_variant("scrfd_2.5g_bnkps"), trained_like, "500m.pth")


def test_untrusted_pickle_is_refused(tmp_path: Path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": NotATensor()}, path)
    with pytest.raises(WeightsError, match="untrusted pickle") as refused:
        read_state_dict(path)
    message = str(refused.value)
    assert f"tries to load the global {__name__}.NotATensor" in message and "torch.save(model.state_dict()" in message
    assert (
        "weights_only=False" not in message and "weights_only` set to `False" not in message
    )  # never advise turning it off
    assert "\n" not in message
    system = tmp_path / "system.pth"
    system.write_bytes(
        pickle.dumps({"state_dict": {}, "x": os.system}, protocol=2)
    )  # what a malicious file reaches for
    with pytest.raises(WeightsError, match=r"the global (posix|os)\.system"):
        read_state_dict(system)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(NotATensor()))
    with pytest.raises(WeightsError):
        read_state_dict(raw)


def test_truncated_and_missing_files(tmp_path: Path, trained_like):
    good = tmp_path / "good.pth"
    torch.save(trained_like, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt") as corrupt:
        read_state_dict(cut)
    assert (
        "miniz" not in str(corrupt.value) and str(corrupt.value).count(". ") <= 1
    )  # torch's paragraph cut to its first sentence
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
