"""A Triton model repository from facebatch artifacts, loadable as is.

    repository/
      README.md                 how to serve it (written by repository_readme)
      .facebatch-triton.json    what facebatch wrote here, each file's sha256 (--force removes only that, unchanged)
      scrfd_10g_320_batch/      one model per artifact
        config.pbtxt            platform onnxruntime_onnx / tensorrt_plan, or backend python
        1/model.onnx | 1/model.plan | 1/model.onnx + 1/model.py
      face_pipeline/            --pipeline: images in, faces out (python backend, BLS)
        config.pbtxt
        1/model.py  1/pipeline.json
      face_search/              --pipeline with a gallery: images in, each face's gallery matches out (BLS to
        config.pbtxt            face_pipeline; planned by engines/served_search, added before the repository is
        1/model.py  1/search.json   written)

Every tensor's dims come from the real graph (or the engine's sidecar), without the batch
axis; ``max_batch_size`` is the profile's max, and a graph whose batch axis is fixed is
refused, since Triton batches along that axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facebatch.core.atomic import ensure_writable_dir
from facebatch.core.errors import SpecError
from facebatch.engines.triton.artifacts import read_artifact
from facebatch.engines.triton.defaults import PIPELINE_MODEL, SEARCH_MODEL
from facebatch.engines.triton.manifest import (
    REPOSITORY_FILE,
    clear_for_writing,
    refuse_sources_inside,
    write_file,
    write_manifest,
)
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.readme import repository_readme
from facebatch.engines.triton.served_models import (
    ServedModel,
    model_name,
    pipeline_model,
    served_model,
)


@dataclass
class TritonRepository:
    """A repository planned (its models and their files) and, once written, what was written."""

    path: Path
    models: list[ServedModel]
    runtime: str
    written: list[str] = field(default_factory=list)  # the files written, relative to ``path``
    sha256: dict[str, str] = field(default_factory=dict)  # each written file's, as its manifest records it

    def model(self, role: str) -> ServedModel | None:
        return next((m for m in self.models if m.role == role), None)


def plan_repository(artifacts: list[Path], out: Path, options: RepositoryOptions) -> TritonRepository:
    """Read every artifact and decide every file; nothing is written yet."""
    if not artifacts:
        raise SpecError("name at least one artifact to serve", field="artifacts")
    read = [read_artifact(Path(p), options.runtime, options.max_batch) for p in artifacts]
    models: list[ServedModel] = []
    for artifact in read:
        name = model_name(artifact.engine or artifact.path)
        if name in (m.name for m in models) or name in (PIPELINE_MODEL, SEARCH_MODEL):
            raise SpecError(f"two artifacts would both be served as {name!r}; rename one of the files")
        models.append(served_model(artifact, options, name))
    if options.pipeline:
        roles = {
            role: [(a, m) for a, m in zip(read, models, strict=False) if a.role == role]
            for role in ("detector", "embedder")
        }
        for role, found in roles.items():
            if len(found) != 1:
                names = ", ".join(a.path.name for a, _ in found) or "none"
                raise SpecError(
                    f"pipeline needs exactly one {role} among the artifacts, got {len(found)} ({names})",
                    field="pipeline",
                )
        models.append(pipeline_model(roles["detector"][0], roles["embedder"][0], options))
    return TritonRepository(Path(out), models, options.runtime)


def triton_repository_from_artifacts(artifacts: list[Path], out: Path, options: RepositoryOptions) -> TritonRepository:
    """``facebatch triton``: plan every model, then write them (face_search, over a gallery, is planned by the
    triton use case, which checks the gallery first)."""
    if options.gallery is not None:
        raise SpecError(
            "gallery: face_search is planned with the gallery's checks by facebatch.workflows.triton.triton; write "
            "this repository with that function",
            field="gallery",
        )
    return write_repository(plan_repository(artifacts, out, options), options)


def write_repository(repository: TritonRepository, options: RepositoryOptions) -> TritonRepository:
    """Write the planned files (each atomically), the README and the manifest of what was written."""
    out = repository.path
    files: dict[str, Path | str] = {
        f"{m.name}/{rel}": content for m in repository.models for rel, content in m.files.items()
    }
    files["README.md"] = repository_readme(repository)
    unlisted = [rel for rel in files if not REPOSITORY_FILE.fullmatch(rel)]
    assert not unlisted, f"{unlisted} would be refused by a later run with force: add them to MODEL_FILES"
    refuse_sources_inside(out, files)
    clear_for_writing(out, files, options.force)
    ensure_writable_dir(out)
    # listed before they are written: a run that stops half-way leaves files a later force may replace (by the same
    # bytes only, since their hashes are recorded after them)
    names = [m.name for m in repository.models]
    write_manifest(out, repository.runtime, names, list(files), {})
    hashes = {rel: write_file(out / rel, content) for rel, content in files.items()}
    write_manifest(out, repository.runtime, names, list(files), hashes)
    repository.written, repository.sha256 = list(hashes), hashes
    return repository
