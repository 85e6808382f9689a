"""``reports/release.json``: what a release knows about itself beyond the other reports, written before its
model card, which is generated from the reports alone (so every figure of the card is in a report).

It holds the released files (sha256, size, task, input, outputs and their meaning, batch range, licence,
the FP32 file a twin was made from), the gates, the speed-up from batching per artifact and backend
(best FPS ÷ batch-1 FPS of the release's own bench), the commands that reproduce the release, and the
environment (facebatch's version, the git commit)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facebatch.configs.license import License
from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec import ModelSpec
from facebatch.core.environment import environment, file_sha256, git_commit
from facebatch.core.version import __version__
from facebatch.engines.bench.report import BenchReport
from facebatch.engines.pipeline.photo_files import image_files
from facebatch.workflows.release.options import ReleaseOptions

FACTS = "reports/release.json"
FACTS_FORMAT = "facebatch-release-facts/1"
TASKS = {"scrfd": "face-detection", "arcface": "face-recognition", "embedder": "face-recognition"}
KIND_MEANING = {
    "score": "face score per anchor (0-1)",
    "bbox": "box distances left, top, right, bottom per anchor, in stride units",
    "kps": "5 landmarks (x, y) per anchor, in stride units",
}


def output_meaning(spec: ModelSpec, name: str) -> str:
    """An output in a user's words: an SCRFD head's kind and stride, or an embedder's embedding."""
    if spec.family.is_embedder:
        return f"face embedding, {spec.embedding_size or '?'} values (L2-normalise, then compare by cosine)"
    kind, _, stride = name.partition("_")
    meaning = KIND_MEANING.get(kind)
    return f"{meaning} (stride {stride})" if meaning and stride.isdigit() else "a detector head output"


def artifact_facts(model: ModelFile, relative: str, license: License, made_from: str | None) -> dict[str, Any]:
    spec = model.spec
    return {
        "file": relative,
        "sha256": file_sha256(model.path),
        "size": model.path.stat().st_size,
        "model": spec.name,
        "family": spec.family.value,
        "task": TASKS[spec.family.value],
        "precision": spec.precision.value,
        "seeded": model.seeded,
        "input": {"name": spec.input.name, "dims": list(spec.input.dims)},
        "input_size": list(spec.input_size),
        "batch": {"min": spec.batch.min, "opt": spec.batch.opt, "max": spec.batch.max},
        "outputs": [
            {"name": t.name, "dims": list(t.dims), "meaning": output_meaning(spec, t.name)} for t in spec.outputs
        ],
        "license": license.to_dict(),
        "made_from": made_from,
    }


def speedups(bench: BenchReport | None) -> list[dict[str, Any]]:
    """Per artifact and backend: best FPS ÷ batch-1 FPS (the figure a model card calls "6×")."""
    rows = []
    for run in bench.runs if bench is not None else []:
        one, best = run.timing(1), run.best()
        if one is not None:
            rows.append(
                {
                    "artifact": run.artifact,
                    "backend": run.backend,
                    "batch1_fps": one.fps,
                    "best_fps": best.fps,
                    "best_batch": best.batch,
                    "speedup": best.fps / one.fps,
                }
            )
    return rows


def reproduce_commands(options: ReleaseOptions, version: str) -> list[str]:
    """The command lines that make this release again (the photos and files where they were)."""
    argv = ["facebatch", "release", "--version", version, "--name", options.name]
    for request in options.models:
        role = "--embedder" if request.size is None else "--detector"
        if request.model:
            argv += [role, request.model]
        if request.weights:
            argv += [f"{role}-weights", str(request.weights)]
        if request.size is not None:
            argv += ["--size", str(request.size[0])]
    for artifact in options.artifacts:
        argv += ["--artifact", str(artifact)]
    for name, reference in options.references.items():
        argv += ["--reference", f"{name}={reference}"]
    setup, images = _photos_setup(options.photos)
    argv += ["--images", images] if images else []
    argv += ["--backend", ",".join(options.bench_backends)]
    argv += ["--batch-sizes", ",".join(map(str, options.bench_batch_sizes)), "--seconds", f"{options.budget.seconds:g}"]
    for flag, on, default in (
        ("fp16", options.fp16, True),
        ("int8", options.int8, False),
        ("engines", options.engines, True),
        ("triton", options.triton, True),
    ):
        if on != default:
            argv.append(f"--{'' if on else 'no-'}{flag}")
    if options.require:
        argv += ["--require", ",".join(options.require)]
    if options.baseline_bench:
        argv += ["--baseline-bench", str(options.baseline_bench)]
    if options.license:
        argv += ["--license", options.license]
    commit = git_commit()
    install = f"git checkout {commit}  # facebatch {__version__}" if commit else f"pip install facebatch=={__version__}"
    return [install, *setup, shlex.join(argv)]


def _photos_setup(photos: Sequence[Path]) -> tuple[list[str], str | None]:
    """The photos as one folder the command can name: theirs when they are all of it, else a copy of them."""
    if not photos:
        return [], None
    folders = {Path(p).parent for p in photos}
    if len(folders) == 1:
        (folder,) = folders
        if set(image_files(folder)) == {Path(p) for p in photos}:
            return [], str(folder)
    copy = "release-photos"
    return [shlex.join(["mkdir", "-p", copy]), shlex.join(["cp", *map(str, photos), copy + "/"])], copy


def facts_record(
    name: str,
    version: str,
    gates: Sequence[Mapping[str, str]],
    artifacts: Sequence[dict[str, Any]],
    bench: BenchReport | None,
    options: ReleaseOptions,
) -> dict[str, Any]:
    return {
        "format": FACTS_FORMAT,
        "name": name,
        "version": version,
        "passed": all(g["status"] != "fail" for g in gates),
        "gates": list(gates),
        "artifacts": list(artifacts),
        "speedups": speedups(bench),
        "photos": [Path(p).name for p in options.photos],
        "commands": reproduce_commands(options, version),
        "facebatch": __version__,
        "git_commit": git_commit(),
        "environment": environment(),
    }


def write_facts(folder: Path, record: Mapping[str, Any]) -> None:
    (folder / FACTS).write_text(json.dumps(record, indent=2) + "\n")
