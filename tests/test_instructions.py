"""SCRFD_320_EXPORT_INSTRUCTIONS.md: every fenced bash block runs, in order, as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

DOC = PROJECT / "SCRFD_320_EXPORT_INSTRUCTIONS.md"


def test_every_command_in_the_instructions_runs(tmp_path: Path):
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 3
    work = tmp_path / "project"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))  # the environment running these tests
    printed = ""
    for block in blocks:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"block failed:\n{block}\n--- stderr ---\n{done.stderr[-2000:]}"
        printed += done.stdout
    shapes = printed
    assert "facebatch verify scrfd_10g_320_seeded_batch.onnx: PASS (strict)" in printed
    assert (work / "build/reports/scrfd_10g_320.verify.xml").is_file()
    assert "'score_8': (32, 3200, 1)" in shapes
    diff = float(re.search(r"in the batch: ([0-9.e+-]+)", shapes).group(1))
    assert diff < 1e-5
    bench = json.loads((work / "build/reports/bench_scrfd_10g_320.json").read_text())
    assert [(r["backend"], [t["batch"] for t in r["timings"]]) for r in bench["runs"]] == [("ort-cpu", [1, 16, 32]), ("openvino", [1, 16, 32])]
    assert "openvino / ort-cpu" in printed and "the ratio is for orientation only" in " ".join(printed.split())
