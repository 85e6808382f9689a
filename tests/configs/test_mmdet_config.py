from pathlib import Path

import pytest

from facebatch.configs.mmdet_config import read_config_file, read_scrfd_model_config
from facebatch.configs.scrfd import SCRFD_CONFIGS
from facebatch.errors import SpecError
from facebatch.exporter.models.scrfd import build_scrfd
from tests.data.scrfd_config import CONFIG_TEXT


def test_reads_an_insightface_config_and_builds_the_same_model(tmp_path: Path):
    path = tmp_path / "my_scrfd.py"
    path.write_text(CONFIG_TEXT)
    values = read_config_file(path)
    assert values["lr_config"]["step"] == [440, 544] and values["total_epochs"] == 640
    model_cfg = read_scrfd_model_config(path)
    ours = {k: tuple(v.shape) for k, v in build_scrfd(**model_cfg).state_dict().items()}
    preset = {k: tuple(v.shape) for k, v in build_scrfd(**SCRFD_CONFIGS["scrfd_2.5g_bnkps"]).state_dict().items()}
    assert ours == preset


@pytest.mark.parametrize(
    "text, message",
    [
        ("import os\nmodel = dict(type='SCRFD')", "import is not supported"),
        ("model = __import__('os').system('true')", "not supported"),
        ("x = 1", "defines no model"),
        ("model = dict(type='RetinaNet', backbone={}, neck={}, bbox_head={})", "expected 'SCRFD'"),
        ("model = dict(type='SCRFD', backbone=unknown_name)", "undefined name"),
        ("model = dict(type='SCRFD'", "not a readable Python config"),
    ],
)
def test_refuses_code_and_non_scrfd_configs(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        read_scrfd_model_config(path)


def test_unknown_structural_keys_are_named(tmp_path: Path):
    cfg = {k: dict(v) for k, v in SCRFD_CONFIGS["scrfd_500m"].items() if isinstance(v, dict)}
    cfg["bbox_head"]["use_dcn"] = True
    with pytest.raises(SpecError, match="use_dcn"):
        build_scrfd(**cfg)


def test_missing_config_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SpecError, match="does not exist"):
        read_scrfd_model_config(tmp_path / "nope.py")
