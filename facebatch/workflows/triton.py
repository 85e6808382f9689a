"""``triton``: a Triton model repository from artifacts, loadable as is.

One model per artifact (its config from the real graph, the batch axis symbolic or refused; a TensorRT
plan only as its sidecar describes it, within its profile), and with ``pipeline`` the face pipeline as a
python-backend model over the detector and the embedder; with a ``gallery`` too, ``face_search`` over it (the
gallery one facebatch wrote, with the very models served, by sha256: else refused before anything is written). A folder that is not empty is refused unless
``force``, and then only what facebatch wrote there before, unchanged since, is replaced (every name the
folder's manifest lists checked first: facebatch's own, inside the folder, through no link).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.configs.model_file import read_model_file
from facebatch.core.environment import int8_cpu_class
from facebatch.core.errors import SpecError
from facebatch.core.progress import note
from facebatch.engines.served_search.plan import search_model
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.repository import TritonRepository, plan_repository, write_repository


@dataclass(frozen=True)
class TritonOptions:
    """The artifacts to serve (ONNX files with a symbolic batch axis, or for the tensorrt runtime plans or the
    ONNX they were built from), the repository folder ``out``, and how each model is served."""

    artifacts: Sequence[Path]
    out: Path
    serving: RepositoryOptions = field(default_factory=RepositoryOptions)


@dataclass
class TritonResult:
    """The repository written: its models, and each file written with its sha256 (what its manifest records)."""

    repository: TritonRepository

    @property
    def path(self) -> Path:
        return self.repository.path

    @property
    def files(self) -> dict[str, str]:
        """Each file written, relative to the repository, and its sha256."""
        return dict(self.repository.sha256)

    def models(self) -> list[dict[str, Any]]:
        rows = []
        for model in self.repository.models:
            config = model.config
            batching = config.dynamic_batching
            rows.append(
                {
                    "name": model.name,
                    "role": model.role,
                    "runtime": config.platform or config.backend,
                    "device": config.instance_kind,
                    "max_batch_size": config.max_batch_size,
                    "preferred_batch_sizes": list(batching.preferred_batch_sizes) if batching else [],
                    "instances": config.instance_count,
                    "source": model.source,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": str(self.path),
            "runtime": self.repository.runtime,
            "models": self.models(),
            "files": self.files,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Triton repository {self.path} ({self.repository.runtime})",
            "",
            "| model | role | runtime | max batch | preferred | instances | from |",
            "|---|---|---|---:|---|---:|---|",
        ]
        for row in self.models():
            preferred = ", ".join(map(str, row["preferred_batch_sizes"])) or "-"
            lines.append(
                f"| {row['name']} | {row['role']} | {row['runtime']} ({row['device']}) | {row['max_batch_size']} | "
                f"{preferred} | {row['instances']} | {row['source']} |"
            )
        lines += ["", f"{len(self.files)} files written; README.md says how to serve and measure it.", ""]
        return "\n".join(lines)


def check_int8_proofs(artifacts: Sequence[Path]) -> None:
    """An INT8 ONNX is served only where quantize's accuracy gate passed it, unforced (its sidecar says so), as the
    pipeline runs one; where it was judged on another CPU class than this one, a note says which class to serve
    it on (a repository is made to be served elsewhere, so that alone does not refuse it)."""
    cpu_class = int8_cpu_class()
    for path in artifacts:
        if path.suffix != ".onnx" or not path.is_file():
            continue  # plans, and files the repository's own reading refuses by name
        model = read_model_file(path)
        if model.precision != "int8":
            continue
        refusal = model.int8_refusal(model.int8_cpu_class or cpu_class)
        if refusal is not None:
            raise SpecError(
                f"artifacts {path.name}: {refusal}; a repository serves INT8 only where the gate passed: quantize "
                "its FP32 source (with calibration photos), or serve the FP32 file",
                field="artifacts",
            )
        if model.int8_cpu_class not in (None, cpu_class):
            note(
                f"{path.name} passed its INT8 gate on {model.int8_cpu_class} CPUs: serve it on one (this is {cpu_class})"
            )


def triton(options: TritonOptions) -> TritonResult:
    """Read every artifact and plan every model (nothing is written until all of them are sound), then write the
    repository: each file atomically, listed in its manifest before it is written, its sha256 recorded after."""
    check_int8_proofs([Path(p) for p in options.artifacts])
    serving = options.serving
    repository = plan_repository([Path(p) for p in options.artifacts], Path(options.out), serving)
    if serving.gallery is not None:
        repository.models.append(search_model(repository, Path(serving.gallery), serving))
    return TritonResult(write_repository(repository, serving))
