import os
import stat
from pathlib import Path

import pytest

from facebatch.core.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from facebatch.core.errors import OutputError


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("export died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_success_replaces_with_normal_permissions(tmp_path: Path):
    target = tmp_path / "a.json"
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_unwritable_directory_is_a_clear_error(tmp_path: Path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="not writable"):
        ensure_writable_dir(locked)


def test_uncreatable_directory_is_a_clear_error():
    with pytest.raises(OutputError, match="cannot create output directory"):
        ensure_writable_dir(Path("/proc/facebatch-cannot-exist"))
