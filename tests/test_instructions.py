"""SCRFD_320_EXPORT_INSTRUCTIONS.md: every fenced bash block runs, in order, as written; a block
that starts with ``# needs: tensorrt`` runs where TensorRT is, and is skipped with the reason
elsewhere."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

DOC = PROJECT / "SCRFD_320_EXPORT_INSTRUCTIONS.md"
NEEDS = re.compile(r"^# needs: (\w+)")


def blocks() -> list[tuple[str | None, str]]:
    """(what the block needs or None, its commands), in document order."""
    return [
        ((m.group(1) if (m := NEEDS.match(block)) else None), block)
        for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    ]


def run_blocks(work: Path, with_tensorrt: bool) -> str:
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))  # the environment running these tests
    printed = ""
    for needs, block in blocks():
        if needs == "tensorrt" and not with_tensorrt:
            continue
        assert needs in (None, "tensorrt"), f"unknown requirement {needs!r}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=work, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"block failed:\n{block}\n--- stderr ---\n{done.stderr[-2000:]}"
        printed += done.stdout
    return printed


def test_the_blocks_that_need_tensorrt_are_marked():
    marked = [block for needs, block in blocks() if needs]
    assert marked and all("facebatch build" in b or "--backend trt" in b for b in marked)
    assert not any("facebatch build" in block for needs, block in blocks() if needs is None)


@pytest.mark.slow  # every command of the instructions, each a process of its own
@pytest.mark.gpu("tensorrt")
def test_the_whole_path_runs_where_tensorrt_is(tmp_path: Path):
    printed = run_blocks(tmp_path / "project", with_tensorrt=True)
    assert "RELEASE PASS" in printed and list((tmp_path / "project" / "build" / "engines").glob("*.plan"))


@pytest.mark.slow  # every command of the instructions, each a process of its own
def test_every_command_in_the_instructions_runs(tmp_path: Path):
    assert len(blocks()) >= 6
    work = tmp_path / "project"
    printed = run_blocks(work, with_tensorrt=False)
    shapes = printed
    assert "facebatch verify scrfd_10g_320_seeded_batch.onnx: PASS (strict)" in printed
    assert (work / "build/reports/scrfd_10g_320.verify.xml").is_file()
    assert "'score_8': (32, 3200, 1)" in shapes
    diff = float(re.search(r"in the batch: ([0-9.e+-]+)", shapes).group(1))
    assert diff < 1e-5
    bench = json.loads((work / "build/reports/bench_scrfd_10g_320.json").read_text())
    assert [(r["backend"], [t["batch"] for t in r["timings"]]) for r in bench["runs"]] == [
        ("ort-cpu", [1, 16, 32]),
        ("openvino", [1, 16, 32]),
    ]
    assert "openvino / ort-cpu" in printed and "the ratio is for orientation only" in " ".join(printed.split())
    assert (work / "build/onnx/scrfd_10g_320_seeded_batch_fp16.onnx").is_file()
    assert json.loads((work / "build/reports/scrfd_10g_320_fp16.verify.json").read_text())["passed"]
    assert printed.rstrip().splitlines()[-1] == "RELEASE CHECK PASS" and "RELEASE PASS" in printed
    release = work / "build/release/scrfd-10g-320-demo"
    assert {p.name for p in release.iterdir()} >= {
        "onnx",
        "reports",
        "triton",
        "junit.xml",
        "MANIFEST.json",
        "SUMMARY.md",
    }
