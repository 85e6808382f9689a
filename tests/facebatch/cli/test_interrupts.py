"""Each command interrupted for real: SIGINT, SIGTERM and SIGHUP sent to a running ``facebatch``
(a child process, as a user's terminal, ``timeout`` or a CI runner sends them) at several moments
of export (inside torch's dynamo exporter among them), convert, quantize and release. Each must
end with one line and exit 128 + the signal, and leave the tree as it was or with complete
artifacts only: no draft or staging folder, no empty --out. A killed run's leftovers are removed by
the next run, which says so. Each run is bounded (a deadline per run; about two minutes in all).

Each run sends itself the signal at a named moment (tests/data/tripwire.py): as a step or progress
line is written, or as a function inside torch's exporter is called; the same moment every run, on
an idle machine or a loaded one, so no run can end before its signal and no moment depends on a sleep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.interrupts import Interrupted, interrupts_as_exceptions
from facebatch.core.leftovers import maker_gone, private_folder, remove_stale
from tests.conftest import PROJECT
from tests.data import tripwire

RUN_DEADLINE_S = 90.0  # a run that neither finishes nor ends on the signal within this fails the test
# moments inside torch's dynamo exporter (torch 2.13): its capture starts; a FakeTensorMode is entered (the trace:
# a signal raised there once made torch enter a second one, a C++ abort); the ONNX program is optimised
CAPTURE = "call:torch.onnx._internal.exporter._capture_strategies:CaptureStrategy.__call__"
FAKE_MODE = "call:torch._subclasses.fake_tensor:FakeTensorMode.__enter__"
OPTIMIZE = "call:torch.onnx._internal.exporter._onnx_program:ONNXProgram.optimize"


def interrupt_at(argv: list[str], moment: str, sig: int) -> tuple[int, list[str]]:
    """Run ``facebatch ARGV``, which sends itself ``sig`` at ``moment`` (``line:TEXT``: as a line with TEXT is
    written on stderr; ``call:MODULE:QUALNAME[@N]``: as that function is called). Returns the exit status and
    stderr's lines."""
    try:
        done = subprocess.run(
            tripwire.command(sig, moment, *argv),
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, COLUMNS="200"),
            timeout=RUN_DEADLINE_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"facebatch {' '.join(argv)} did not end within {RUN_DEADLINE_S:.0f} s")
    lines = done.stderr.splitlines()
    reached = f"tripwire: {signal.Signals(sig).name} at {moment}"
    assert reached in lines, f"it ended (exit {done.returncode}) before {moment}: {lines[-3:]}"
    return done.returncode, lines


def assert_clean(folder: Path, existed: bool) -> None:
    """Nothing hidden left behind; what is there is complete (each artifact matches its sidecar)."""
    if not existed and not folder.exists():
        return
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert hidden == [], f"left behind in {folder}: {hidden}"
    for artifact in folder.rglob("*.onnx"):
        read_model_file(artifact)  # its sidecar names exactly this file, or reading refuses it
    if not existed:
        assert any(folder.iterdir()), f"an empty {folder} was left by a run that wrote nothing"


def assert_interrupted(code: int, lines: list[str], sig: int, kept: str | None = None) -> None:
    """Exit 128 + the signal, and one last line that says so (and what the run kept, where it kept something)."""
    name = signal.Signals(sig).name
    said = f"{kept}; " if kept else ""
    assert code == 128 + sig, (code, lines[-5:])
    assert lines[-1] == f"facebatch: interrupted ({name}): stopped; {said}nothing half-written was left", lines[-5:]
    assert not any("Traceback" in line or "terminate called" in line for line in lines), lines


@pytest.mark.parametrize(
    ("sig", "moment"),
    [
        (signal.SIGINT, "line:… export scrfd_500m_bnkps to ONNX"),  # as the export step starts
        (signal.SIGINT, CAPTURE),  # inside torch's dynamo exporter: held until torch returns
        (signal.SIGINT, FAKE_MODE),
        (signal.SIGTERM, f"{FAKE_MODE}@2"),
        (signal.SIGHUP, OPTIMIZE),
        (signal.SIGTERM, "line:… import weights"),
        (signal.SIGTERM, "line:… parity torch vs onnxruntime"),
    ],
    ids=["int-export", "int-capture", "int-trace", "term-trace", "hup-optimize", "term-import", "term-parity"],
)
@pytest.mark.slow  # facebatch export, in a process of its own
def test_an_interrupted_export_ends_cleanly(models_dir: Path, tmp_path: Path, sig: int, moment: str):
    out = tmp_path / "new" / "out"  # two folders the run creates: neither may stay behind empty
    argv = ["export", "--weights", str(models_dir / "det_500m.onnx"), "--size", "64", "--out", str(out)]
    code, lines = interrupt_at(argv, moment, sig)
    if moment.startswith("call:"):  # torch's exporter was running: the step that ran it is the last begun
        assert [line for line in lines if line.startswith("… ")][-1].startswith("… export scrfd_500m_bnkps"), lines
    assert_interrupted(code, lines, sig)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("command", "marker", "sig"),
    [
        (["convert", "--fp16"], "… lint the graph", signal.SIGTERM),
        (["quantize"], "… quantise", signal.SIGHUP),
        (["quantize"], "… compare the INT8 model", signal.SIGINT),
    ],
    ids=["convert-term", "quantize-hup", "quantize-int"],
)
def test_an_interrupted_conversion_leaves_the_folder_as_it_was(
    small_detector: Path, photos: list[Path], tmp_path: Path, command: list[str], marker: str, sig: int
):
    folder = tmp_path / "models"
    folder.mkdir()
    for file in small_detector.parent.glob(f"{small_detector.stem}.*"):
        (folder / file.name).write_bytes(file.read_bytes())
    before = sorted(p.name for p in folder.iterdir())
    source = folder / small_detector.name
    argv = [command[0], str(source), *command[1:], "--images", str(photos[0].parent)]
    code, lines = interrupt_at(argv, f"line:{marker}", sig)
    assert_interrupted(code, lines, sig)
    assert sorted(p.name for p in folder.iterdir()) == before
    assert_clean(folder, existed=True)


@pytest.mark.parametrize(
    ("sig", "marker"),
    [(signal.SIGTERM, "… rebuild the torch model"), (signal.SIGINT, "… convert"), (signal.SIGHUP, "… bench")],
)
def test_an_interrupted_release_leaves_no_staging_folder(
    small_detector: Path, photos: list[Path], tmp_path: Path, sig: int, marker: str
):
    out = tmp_path / "release"
    argv = ["release", "--artifact", str(small_detector), "--out", str(out), "--version", "1", "--no-triton"]
    argv += ["--backend", "ort-cpu", "--batch-sizes", "1,4", "--seconds", "0.3", "--images", str(photos[0].parent)]
    code, lines = interrupt_at(argv, f"line:{marker}", sig)
    assert_interrupted(code, lines, sig)
    assert not out.exists(), f"left behind: {sorted(p.name for p in out.iterdir())}"


@pytest.mark.slow  # facebatch detect, in a process of its own
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_detect_says_how_many_annotated_copies_it_wrote(
    models_dir: Path, photos: list[Path], tmp_path: Path, sig: int
):
    """Before: 'stopped; nothing half-written was left', with 5 whole copies in the folder and not a word of them."""
    draw = tmp_path / "annotated"
    argv = ["detect", str(photos[0].parent), "--detector", str(models_dir / "det_500m.onnx"), "--draw", str(draw)]
    code, lines = interrupt_at([*argv, "--threads", "1"], "line:… detect [5/", sig)  # after the 5th copy
    assert_interrupted(code, lines, sig, f"5 annotated copies written to {draw}")
    assert len(list(draw.iterdir())) == 5 and not any(p.name.startswith(".") for p in draw.iterdir())


def test_keeping_puts_what_was_kept_on_the_interrupt():
    from facebatch.core.interrupts import keeping, kept

    with pytest.raises(Interrupted) as caught, keeping(lambda: "outer"), keeping(lambda: "3 copies written"):
        raise Interrupted(signal.SIGINT)
    assert kept(caught.value) == "3 copies written"  # the innermost says
    with pytest.raises(KeyboardInterrupt) as caught, keeping(lambda: 1 / 0):
        raise KeyboardInterrupt
    assert kept(caught.value) is None  # a describe that fails says nothing; the interrupt goes on


def test_a_signal_inside_the_block_is_an_exception_and_the_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, interrupts_as_exceptions():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here, at once
    assert caught.value.exit_code == 143 and caught.value.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_what_a_killed_run_left_is_removed_by_the_next_and_said(tmp_path: Path, capsys, caplog):
    """SIGKILL cannot be caught: the folder stays until the next run of its kind finds its maker gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    left = tmp_path / f".a.onnx.draft-{child.pid}-x1x1x1x1"
    left.mkdir()
    (left / "a.onnx").write_bytes(b"half")
    assert not maker_gone(child.pid, left.stat().st_mtime)  # its maker still runs: kept
    assert remove_stale(tmp_path, ".a.onnx.draft-") == []
    child.kill()
    child.wait()
    mine = private_folder(tmp_path, ".a.onnx.draft-")
    assert not left.exists() and mine.name.startswith(f".a.onnx.draft-{os.getpid()}-")
    assert "removed 1 folder(s) in" in caplog.text and "left by a run that was killed" in caplog.text
    # a pid reused by a process that started after the folder was made is not its maker
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = tmp_path / f".b.staging-{later.pid}-x2x2x2x2"
        reused.mkdir()
        made = time.time() - 3600
        os.utime(reused, (made, made))
        assert maker_gone(later.pid, made) and remove_stale(tmp_path, ".b.staging-") == [reused]
    finally:
        later.kill()
        later.wait()


def test_a_run_that_wrote_nothing_leaves_no_empty_output_folder(tmp_path: Path, capsys):
    """A conversion whose proof fails (FP16 overflow) after it made -o's folders: they go again."""
    from facebatch.cli import main
    from tests.facebatch.workflows.test_convert import overflowing_embedder

    source = overflowing_embedder(tmp_path / "clamped.onnx")
    out = tmp_path / "a" / "b" / "clamped_fp16.onnx"
    assert main(["convert", str(source), "--fp16", "--batch-sizes", "1,2", "-o", str(out)]) == 1
    assert "nothing was written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.onnx"]


@pytest.mark.parametrize(
    ("sig", "marker"),
    [(signal.SIGINT, "… index [1/17]"), (signal.SIGTERM, "… index [5/17]"), (signal.SIGHUP, "… index [16/17]")],
    ids=["int-first-photo", "term-mid", "hup-last-shard"],
)
def test_an_interrupted_index_keeps_what_it_committed(
    real_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, sig: int, marker: str
):
    pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
    from facebatch.engines.gallery.store import Gallery

    out = tmp_path / "new" / "gallery"
    argv = ["index", str(photos[0].parent), "--out", str(out), "--photos-per-shard", "2", "--workers", "1"]
    argv += ["--detector", str(real_detector), "--embedder", str(batch_embedder), "--threads", "1", "--batch-size", "1"]
    code, lines = interrupt_at(argv, f"line:{marker}", sig)  # the run (~4 s) goes no further than the line
    if not (out / "manifest.json").exists():  # stopped before the first commit: nothing left, not even folders
        assert_interrupted(code, lines, sig)
        assert not (tmp_path / "new").exists(), sorted(p.name for p in (tmp_path / "new").rglob("*"))
        return
    gallery = Gallery.open(out)
    photo = int(marker.split("[")[1].split("/")[0])  # written before its shard (2 photos each) is committed
    shards = (photo - 1) // 2
    assert len(gallery.manifest.shards) == shards, gallery.manifest.shards
    kept = f"{shards} shards ({2 * shards} photos) kept in {out}; run again to resume"  # before: not said
    assert_interrupted(code, lines, sig, kept)
    for position in range(len(gallery.manifest.shards)):
        gallery.read_shard(position)  # every committed shard whole
    named = {entry.name for entry in gallery.manifest.shards}
    assert {p.name for p in (out / "shards").iterdir()} == named, "uncommitted shard files left"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".lock"]
