from pathlib import Path

import pytest

from facebatch.configs.mmdet_config import read_config_file, read_scrfd_model_config
from facebatch.configs.scrfd import SCRFD_CONFIGS
from facebatch.core.errors import SpecError
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


@pytest.mark.parametrize(
    "text, message",
    [
        ("x = 9**9**9", "power above"),
        ("x = 2**5000", "power above"),
        ("x = 'x' * 10**9", "repetition longer"),
        ("x = [0] * 10**9", "repetition longer"),
        ("x = 10**9 * [0]", "repetition longer"),
        ("x = '%999999999d' % 1", "'%' formatting"),
        ("a = [0] * 60000\nb = a + a", "concatenation longer"),
        ("x = 1 / 0", "ZeroDivisionError"),
        ("x = 1.5 ** 100000", "OverflowError"),
        ("x = 2**4000 * 2**4000", "product above"),
        ("x = " + "[" * 150 + "1" + "]" * 150, "nested deeper|not a readable"),
        ("x = " + "-" * 500 + "1", "nested deeper|not a readable"),
        ("x = '" + "a" * 200_000 + "'", "larger than"),
    ],
)
def test_a_config_cannot_spend_the_machine(tmp_path: Path, text: str, message: str):
    """Each of these hung or allocated gigabytes before the evaluator bounded its values (9**9**9 ran
    for minutes); now each is refused at once, by line, before the operation runs."""
    path = tmp_path / "bomb.py"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        read_config_file(path)


def test_a_huge_config_file_is_refused_unread(tmp_path: Path):
    path = tmp_path / "huge.py"
    path.write_text("# " + "x" * 1_100_000 + "\n")
    with pytest.raises(SpecError, match="an SCRFD config is a few KB"):
        read_config_file(path)


def test_ordinary_arithmetic_still_evaluates(tmp_path: Path):
    path = tmp_path / "ok.py"
    path.write_text("lr_mult = 8\nstep = [55 * lr_mult, 68 * lr_mult]\nx = 2**10 + 0.5 * 3 - 7 // 2 % 3\ny = -(1.0e-3)")
    values = read_config_file(path)
    assert values["step"] == [440, 544] and values["x"] == 1024 + 1.5 - 0 and values["y"] == -1e-3
