"""Whole-process time: what a user waits for from typing the command to its last photo, start-up
included, for ``facebatch embed`` and for the few lines of Python an insightface user writes
(import it, build ``FaceAnalysis`` on the same ONNX files, ``app.get`` each photo). Each side runs
as a fresh interpreter, over the whole folder and over its first photo alone (start-up plus the
first photo's latency), the two sides taking turns, ``repeats`` times; the median is kept.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.errors import EngineError
from facebatch.engines.pipeline.options import PipelineOptions

# What an insightface user runs: the pack links the same two ONNX files, the sessions get the same
# onnxruntime options as ours (threads, no spinning), photos are read with cv2.imread.
PEER_SCRIPT = """
import logging, os, sys, tempfile
import cv2
import onnxruntime as ort
from insightface.app import FaceAnalysis

detector, embedder, height, width, threads, det_thresh, listing = sys.argv[1:8]
logging.getLogger("insightface").setLevel(logging.ERROR)
options = ort.SessionOptions()
if int(threads) > 0:
    options.intra_op_num_threads = int(threads)
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
with tempfile.TemporaryDirectory() as pack:
    os.symlink(os.path.abspath(detector), os.path.join(pack, "1_detection_" + os.path.basename(detector)))
    os.symlink(os.path.abspath(embedder), os.path.join(pack, "2_recognition_" + os.path.basename(embedder)))
    app = FaceAnalysis(name=pack, providers=["CPUExecutionProvider"], allowed_modules=["detection", "recognition"],
                       sess_options=options)
    app.prepare(ctx_id=-1, det_thresh=float(det_thresh), det_size=(int(width), int(height)))
    faces = 0
    for line in open(listing):
        image = cv2.imread(line.rstrip("\\n"))
        if image is not None:
            faces += len(app.get(image))
print(faces)
"""


@dataclass
class ProcessTime:
    """One command run as a fresh process: the wall seconds of each run."""

    name: str  # "facebatch embed (folder)", "insightface script (first photo)": the side, then the label
    photos: int
    command: list[str]
    seconds: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What it ran over: "folder" or "first photo"."""
        return self.name[self.name.index("(") + 1 : -1]

    @property
    def ours(self) -> bool:
        return self.name.startswith("facebatch embed")

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "photos": self.photos,
            "command": self.command,
            "seconds": self.seconds,
            "median_seconds": self.median_seconds,
        }


@dataclass(frozen=True)
class ProcessSides:
    """The two commands' arguments: ours (``facebatch embed``'s flags) and the peer's files."""

    our_flags: tuple[str, ...]  # --detector … --embedder … --backend … and the settings
    peer_detector: Path
    peer_embedder: Path
    det_size: tuple[int, int]
    threads: int
    det_thresh: float


def embed_flags(
    detector: Path,
    embedder: Path,
    backend: str,
    settings: PipelineOptions,
    threads: int | None = None,
    size: tuple[int, int] | None = None,
    embedder_spec: Path | None = None,
    bf16: bool = False,
    precision: str | None = None,
) -> tuple[str, ...]:
    """``facebatch embed``'s flags for the run a pipeline bench times in-process: the same models
    (``embedder`` may be the spec file that names its ONNX), backend, batch sizes, readers, lanes,
    threads and BF16 compute (an INT8 twin is named by its path; ``precision`` auto chooses again, per
    model, what the bench chose), so the whole-process time is of the same work."""
    flags = ["--detector", str(detector), "--embedder", str(embedder), "--backend", backend]
    flags += ["--batch-size", str(settings.batch_size), "--embed-batch-size", str(settings.embed_batch_size)]
    flags += ["--workers", str(settings.read_workers)]
    if threads is not None:
        flags += ["--threads", str(threads)]
    if settings.lanes is not None:
        flags += ["--lanes", str(settings.lanes)]
    if size is not None:
        flags += ["--size", f"{size[0]}x{size[1]}"]
    if embedder_spec is not None:
        flags += ["--embedder-spec", str(embedder_spec)]
    asked = precision if precision in ("bf16", "auto") else "bf16" if bf16 else None
    if asked is not None:
        flags += ["--precision", asked]
    return tuple(flags + (["--reduced-decode"] if settings.reduced_decode else []))


def _run(command: Sequence[str], environment: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EngineError(f"{' '.join(command[:4])} … exited {done.returncode}: {tail[0]}")
    return seconds


def measure_processes(
    sides: ProcessSides, photos: Sequence[Path], repeats: int, with_peer: bool, advance=None
) -> list[ProcessTime]:
    """facebatch embed and (``with_peer``) the insightface script, over ``photos`` and over the first
    photo alone, each as a fresh process, ``repeats`` times taking turns."""
    environment = os.environ | {"PYTHONWARNINGS": "ignore"}
    measured: list[ProcessTime] = []
    with tempfile.TemporaryDirectory(prefix="facebatch-process-time-") as scratch:
        runs = []
        for label, subset in (("folder", list(photos)), ("first photo", list(photos[:1]))):
            listing = Path(scratch) / f"{len(subset)}.txt"
            listing.write_text("".join(f"{p}\n" for p in subset))
            ours = [sys.executable, "-m", "facebatch", "embed", *map(str, subset), "-o", str(Path(scratch) / "e.npz")]
            ours += list(sides.our_flags)
            runs.append(ProcessTime(f"facebatch embed ({label})", len(subset), ours))
            if with_peer:
                peer = [sys.executable, "-c", PEER_SCRIPT, str(sides.peer_detector), str(sides.peer_embedder)]
                peer += [str(sides.det_size[0]), str(sides.det_size[1]), str(sides.threads), str(sides.det_thresh)]
                runs.append(ProcessTime(f"insightface script ({label})", len(subset), [*peer, str(listing)]))
        for _ in range(repeats):
            for run in runs:
                run.seconds.append(_run(run.command, environment))
                if advance is not None:
                    advance(f"{run.name}: {run.seconds[-1]:.2f} s")
        measured += runs
    return measured
