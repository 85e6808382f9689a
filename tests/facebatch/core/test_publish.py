"""Prove, then publish: every artifact writer goes through facebatch.core.publish, and a process killed
at each point between its steps leaves what publish's docstring promises: before the first
rename the old artifact and sidecar untouched (the abandoned draft removed by the next draft);
between the renames the new artifact beside a sidecar that readers see is not its own; after
both, the new pair. Each writer is run in a child process killed with SIGKILL at the step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from facebatch.core.publish import ARTIFACT_RENAMED, DRAFTED, PUBLISHED, draft, publish, sidecar_of, sidecar_path
from tests.conftest import PROJECT, slow_fixture

# The child: crash_point kills it at the named step, then runs the writer's code.
HARNESS = """
import os, signal, sys
import facebatch.core.publish as publish
publish.crash_point = lambda at: os.kill(os.getpid(), signal.SIGKILL) if at == sys.argv[1] else None
exec(sys.argv[2])
"""


def killed_at(step: str, code: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, step, textwrap.dedent(code)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -signal.SIGKILL, (
        f"the writer was not killed at {step!r} (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    return done


def old_pair(target: Path) -> tuple[bytes, str]:
    """A previous good artifact and its sidecar at ``target``, as publish writes them."""
    target.write_bytes(b"the previous artifact")
    sidecar_path(target).write_text(json.dumps({"artifact": target.name, "sha256": _sha(target)}))
    return target.read_bytes(), sidecar_path(target).read_text()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def drafts_beside(target: Path) -> list[Path]:
    return list(target.parent.glob(f".{target.name}.draft-*"))


def assert_left_as_promised(step: str, target: Path, old: tuple[bytes, str]) -> None:
    if step == DRAFTED:
        assert (target.read_bytes(), sidecar_path(target).read_text()) == old  # untouched
        assert drafts_beside(target), "a killed draft leaves its folder"
        with draft(target):
            pass
        assert drafts_beside(target) == [], "the next draft removes what a dead process left"
    elif step == ARTIFACT_RENAMED:
        assert target.read_bytes() != old[0] and sidecar_path(target).read_text() == old[1]
        assert sidecar_of(target) is None  # the old sidecar is recognised as not this file's
    else:
        sidecar = sidecar_of(target)
        assert target.read_bytes() != old[0] and sidecar is not None and sidecar["artifact"] == target.name


@pytest.mark.parametrize("step", [DRAFTED, ARTIFACT_RENAMED, PUBLISHED])
def test_a_publish_killed_between_its_steps_leaves_what_it_promises(tmp_path: Path, step: str):
    target = tmp_path / "model.onnx"
    old = old_pair(target)
    killed_at(
        step,
        f"""
        from pathlib import Path
        from facebatch.core.publish import draft, publish
        with draft(Path({str(target)!r})) as candidate:
            candidate.path.write_bytes(b"the new artifact")
            publish(candidate, "a test", {{"note": "new"}})
    """,
    )
    assert_left_as_promised(step, target, old)


def test_publish_writes_one_header_and_refuses_a_body_that_restates_it(tmp_path: Path):
    target = tmp_path / "model.onnx"
    with draft(target) as candidate:
        candidate.path.write_bytes(b"artifact")
        with pytest.raises(ValueError, match="may not restate its header: sha256"):
            publish(candidate, "a test", {"sha256": "0" * 64})
        published = publish(
            candidate, "a test", {"note": 1}, source={"artifact": "src.onnx", "sha256": "ab"}, proof={"passed": True}
        )
    sidecar = json.loads(published.sidecar.read_text())
    assert list(sidecar)[:9] == [
        "artifact",
        "sha256",
        "size",
        "made_by",
        "facebatch",
        "created",
        "source",
        "proof",
        "environment",
    ]
    assert (
        sidecar["sha256"] == _sha(target)
        and sidecar["size"] == 8
        and sidecar["note"] == 1
        and sidecar_of(target) == sidecar
    )
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    assert drafts_beside(target) == []
    with draft(target) as candidate:  # leaving without publishing writes nothing
        candidate.path.write_bytes(b"unproven")
    assert target.read_bytes() == b"artifact" and drafts_beside(target) == []


def test_a_draft_of_a_running_process_is_left_alone(tmp_path: Path):
    target = tmp_path / "model.onnx"
    alive = tmp_path / f".model.onnx.draft-{os.getpid()}-x"
    alive.mkdir()
    with draft(target):
        pass
    assert alive.is_dir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- every writer, killed before and between its renames ----------------------------------------------
def writer_code(writer: str, source: Path, target: Path, photos: list[Path]) -> str:
    photos_list = [str(p) for p in photos]
    return {
        "export": f"""
            from pathlib import Path
            from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd
            export_scrfd(ScrfdExportRequest(variant="scrfd_500m_bnkps", height=64, width=64, out_dir=Path({str(target.parent)!r}),
                                            name={target.name!r}, parity_batch_sizes=(1, 2)))
        """,
        "convert": f"""
            from pathlib import Path
            from facebatch.workflows.convert import ConvertOptions, convert_fp16
            convert_fp16(Path({str(source)!r}), Path({str(target)!r}), ConvertOptions(batch_sizes=(1, 2)))
        """,
        "quantize": f"""
            from pathlib import Path
            from facebatch.workflows.quantize import QuantizeOptions, quantize_int8
            quantize_int8(Path({str(source)!r}), QuantizeOptions(photos=[Path(p) for p in {photos_list!r}], bench=False, force=True,
                                                                 recipes=("u8u8",)), Path({str(target)!r}))
        """,
        "build": f"""
            from pathlib import Path
            from facebatch.workflows.build import BuildOptions, build_engine_job
            build_engine_job(Path({str(source)!r}), BuildOptions(batch_max=8, out=Path({str(target)!r}).with_suffix(".plan")))
        """,
        "fix": f"""
            from pathlib import Path
            from facebatch.workflows.fix import fix_onnx
            fix_onnx(Path({str(source)!r}), Path({str(target)!r}), size=(64, 64))
        """,
    }[writer]


@pytest.fixture(scope="module")
@slow_fixture("exports SCRFD-500M from torch")
def seeded_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    folder = tmp_path_factory.mktemp("seeded")
    return export_scrfd(
        ScrfdExportRequest(variant="scrfd_500m_bnkps", height=64, width=64, out_dir=folder, parity_batch_sizes=(1, 2))
    ).onnx_path


@pytest.mark.parametrize("step", [DRAFTED, ARTIFACT_RENAMED])
@pytest.mark.parametrize(
    "writer", ["export", "convert", "quantize", "fix", pytest.param("build", marks=pytest.mark.gpu("tensorrt"))]
)
def test_every_writer_killed_between_its_steps_loses_nothing(
    writer: str, step: str, seeded_detector: Path, models_dir: Path, photos: list[Path], tmp_path: Path
):
    if writer == "build":
        pytest.importorskip("tensorrt", reason="facebatch build needs TensorRT")
    source = models_dir / "det_500m.onnx" if writer == "fix" else seeded_detector
    target = tmp_path / (f"{writer}_out.plan" if writer == "build" else f"{writer}_out.onnx")
    old = old_pair(target)
    killed_at(step, writer_code(writer, source, target, photos[:2]))
    assert_left_as_promised(step, target, old)
