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

Every tensor's dims come from the real graph (or the engine's sidecar), without the batch
axis; ``max_batch_size`` is the profile's max, and a graph whose batch axis is fixed is
refused, since Triton batches along that axis.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import onnx

from facebatch.configs.model_file import ModelFile, fix_command, read_model_file
from facebatch.configs.spec import ModelSpec
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.atomic import atomic_path, ensure_writable_dir
from facebatch.core.environment import file_sha256
from facebatch.core.errors import OutputError, SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.core.trusted_paths import SHA256, member, refuse_symlinked_folder, refuse_symlinks
from facebatch.engines.pipeline.image_header import DEFAULT_MAX_PHOTO_PIXELS, batch_pixel_budget
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.engines.runners.engine_record import EngineRecord, find_engine, read_engine_record
from facebatch.engines.triton.model_config import DynamicBatching, ModelConfig, TritonTensor, preferred_batch_sizes
from facebatch.engines.triton.readme import repository_readme
from facebatch.engines.triton.settings import (
    DEFAULT_INSTANCES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_QUEUE_DELAY_US,
    DEFAULT_QUEUE_TIMEOUT_MS,
    FACE_OUTPUTS,
    IMAGES_INPUT,
    MANIFEST,
    PIPELINE_FILE,
    PIPELINE_MODEL,
    RUNTIMES,
)

MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MODEL_NAME = re.compile(rf"^{MODEL_NAME_PATTERN}$")
PLAN_SUFFIX = ".plan"


@dataclass(frozen=True)
class RepositoryOptions:
    runtime: str = "onnxruntime"  # onnxruntime | tensorrt | python
    pipeline: bool = False
    instances: int = DEFAULT_INSTANCES
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE  # 0: unbounded
    queue_timeout_ms: int = DEFAULT_QUEUE_TIMEOUT_MS  # 0: none
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS  # face_pipeline refuses a larger photo before decoding it
    max_batch_pixels: int | None = None  # decoded pixels of a merged batch at once; None: batch_pixel_budget's
    max_batch: int | None = None  # None: each artifact's profile max
    device: str | None = None  # cpu | gpu; None: gpu for onnxruntime and tensorrt, cpu for python
    force: bool = False

    @property
    def batch_pixels(self) -> int:
        """What face_pipeline decodes of a merged batch at once (its stub's memory bound)."""
        return batch_pixel_budget(self.max_photo_pixels, self.max_batch_pixels)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise SpecError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if self.instances < 1:
            raise SpecError(f"--instances must be at least 1, got {self.instances}")
        if self.max_queue_delay_us < 0:
            raise SpecError(f"--max-queue-delay-us cannot be negative, got {self.max_queue_delay_us}")
        if self.max_queue_size < 0 or self.queue_timeout_ms < 0:
            raise SpecError("--max-queue-size and --queue-timeout-ms cannot be negative (0: no bound)")
        if self.max_photo_pixels < 1:
            raise SpecError(f"--max-photo-pixels must be at least 1, got {self.max_photo_pixels}")
        if self.max_batch_pixels is not None and self.max_batch_pixels < self.max_photo_pixels:
            raise SpecError(
                f"--max-batch-pixels {self.max_batch_pixels} is below --max-photo-pixels {self.max_photo_pixels}: "
                "one photo must fit in a batch's budget"
            )
        if self.max_batch is not None and self.max_batch < 1:
            raise SpecError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.runtime == "tensorrt" and self.device == "cpu":
            raise SpecError(
                "TensorRT engines run on a GPU only; drop --device cpu or pick --runtime onnxruntime/python"
            )
        if self.runtime == "python" and self.device == "gpu":
            raise SpecError(
                "--runtime python runs onnxruntime on the CPU inside the python backend; drop --device gpu, "
                "or pick --runtime onnxruntime/tensorrt for GPU instances"
            )

    def batching(self, preferred: tuple[int, ...]) -> DynamicBatching:
        return DynamicBatching(preferred, self.max_queue_delay_us, self.max_queue_size, self.queue_timeout_ms * 1000)

    @property
    def instance_kind(self) -> str:
        return self.device or ("cpu" if self.runtime == "python" else "gpu")


@dataclass
class ServedModel:
    """One model of the repository: its config and the files of its folder (relative path →
    the source file to copy, or the text to write)."""

    name: str
    role: str  # detector | embedder | pipeline
    config: ModelConfig
    files: dict[str, Path | str] = field(default_factory=dict)
    source: str = ""  # the artifact it serves


@dataclass
class TritonRepository:
    path: Path
    models: list[ServedModel]
    runtime: str
    written: list[str] = field(default_factory=list)

    def model(self, role: str) -> ServedModel | None:
        return next((m for m in self.models if m.role == role), None)


# -- reading the artifacts ------------------------------------------------------------------------
def _onnx_tensors(model: onnx.ModelProto, path: Path) -> tuple[tuple[TritonTensor, ...], tuple[TritonTensor, ...]]:
    """Inputs and outputs with their dims minus the batch axis, which must be symbolic on every one."""
    dims = io_dims(model)
    initializers = {i.name for i in model.graph.initializer}

    def tensor(value: onnx.ValueInfoProto) -> TritonTensor:
        shape = dims[value.name]
        if not shape or not isinstance(shape[0], str):
            batch = shape[0] if shape else "no axes"
            raise SpecError(
                f"{path.name} has a fixed batch axis ({batch}) on {value.name!r}, and Triton batches along that axis; "
                f"make it symbolic with '{fix_command(path)}' (or re-export it with facebatch export)"
            )
        rest = tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape[1:])
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        return TritonTensor(value.name, dtype, rest)

    inputs = tuple(tensor(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(tensor(v) for v in model.graph.output)


@dataclass
class _Artifact:
    """What a served model is made from: the spec, the tensors, the file to copy and its profile."""

    path: Path
    spec: ModelSpec
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    detector_size: tuple[int, int]
    profile_opt: int
    profile_max: int
    engine: Path | None = None  # tensorrt: the plan served

    @property
    def role(self) -> str:
        return "embedder" if self.spec.family.is_embedder else "detector"


def _read_onnx(path: Path) -> tuple[ModelFile, tuple[TritonTensor, ...], tuple[TritonTensor, ...]]:
    target = read_model_file(path)
    inputs, outputs = _onnx_tensors(target.model, path)
    return target, inputs, outputs


def _engine_source_onnx(plan: Path, record: EngineRecord) -> Path:
    """The ONNX TensorRT parsed for this plan (its tensor types are the engine's): beside the
    plan, or in the onnx/ folder beside the engines/ folder, as facebatch build lays them out."""
    name, sha = record.source_onnx.get("file", ""), record.source_onnx.get("sha256", "")
    for folder in (plan.parent, plan.parent.parent / "onnx"):
        candidate = folder / Path(name).name
        if candidate.is_file() and file_sha256(candidate) == sha:
            return candidate
    raise SpecError(
        f"cannot find {Path(name).name}, the ONNX engine {plan.name} was built from (sha256 {sha[:12]}…), beside the "
        f"engine or in {plan.parent.parent / 'onnx'}; its tensor types are the engine's: keep it there"
    )


def _read_engine(plan: Path, max_batch: int | None) -> _Artifact:
    record = read_engine_record(plan)
    if file_sha256(plan) != record.sha256:
        raise SpecError(
            f"engine {plan.name} is not the one its sidecar {plan.with_suffix('.json').name} describes (sha256 differs); "
            "rebuild it with 'facebatch build'"
        )
    batch = record.profile.batch
    if max_batch is not None and max_batch > batch.max:
        raise SpecError(
            f"engine {plan.name} was built for batch {batch.min}-{batch.max}, smaller than --max-batch {max_batch}; "
            f"pass --max-batch {batch.max} or rebuild it with 'facebatch build --max {max_batch}'"
        )
    source = _engine_source_onnx(plan, record)
    _, inputs, outputs = _read_onnx(source)
    # an engine takes its profile's shape only (a --dynamic-size ONNX was built at one size)
    shapes = record.profile.shapes
    inputs = tuple(replace(t, dims=tuple(shapes[t.name][2][1:])) if t.name in shapes else t for t in inputs)
    size = record.profile.size
    return _Artifact(
        plan, record.spec, inputs, outputs, (int(size[0]), int(size[1])), batch.opt, batch.max, engine=plan
    )


def read_artifact(path: Path, runtime: str, max_batch: int | None) -> _Artifact:
    """An ONNX artifact (or, for tensorrt, a plan or the ONNX whose built engine is served)."""
    path = Path(path)
    if path.suffix == PLAN_SUFFIX:
        if runtime != "tensorrt":
            raise SpecError(
                f"{path.name} is a TensorRT engine; serve it with --runtime tensorrt, or pass its ONNX artifact"
            )
        return _read_engine(path, max_batch)
    target, inputs, outputs = _read_onnx(path)
    if runtime == "tensorrt":
        return _read_engine(find_engine(path, target.sha256, target.spec), max_batch)
    spec = target.spec
    return _Artifact(path, spec, inputs, outputs, spec.input_size, spec.batch.opt, spec.batch.max)


# -- the models -----------------------------------------------------------------------------------
PYTHON_MODEL_CODE = """\
# Written by facebatch. The model's code is facebatch's own ({module}), so the python
# backend's environment needs facebatch and its dependencies (see the repository's README.md).
import triton_python_backend_utils as pb_utils

from {module} import {cls}


class TritonPythonModel({cls}):
    backend = pb_utils  # the python backend's utilities, handed to facebatch's code
"""
PYTHON_MODELS = "facebatch.engines.triton.python_models"


def python_model_code(cls: str) -> str:
    return PYTHON_MODEL_CODE.format(module=PYTHON_MODELS, cls=cls)


def _model_name(path: Path) -> str:
    name = path.stem
    if not MODEL_NAME.match(name):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("._-") or "model"
    return name


def _served_model(artifact: _Artifact, options: RepositoryOptions, name: str) -> ServedModel:
    max_batch = options.max_batch or artifact.profile_max
    batching = options.batching(preferred_batch_sizes(artifact.profile_opt, max_batch))
    common = dict(
        name=name,
        max_batch_size=max_batch,
        inputs=artifact.inputs,
        outputs=artifact.outputs,
        dynamic_batching=batching,
        instance_kind=options.instance_kind,
        instance_count=options.instances,
    )
    if options.runtime == "tensorrt":
        assert artifact.engine is not None
        config = ModelConfig(platform="tensorrt_plan", **common)
        files: dict[str, Path | str] = {"1/model.plan": artifact.engine}
    elif options.runtime == "onnxruntime":
        config = ModelConfig(platform="onnxruntime_onnx", **common)
        files = {"1/model.onnx": artifact.path}
    else:
        config = ModelConfig(backend="python", parameters={"onnx_file": "model.onnx", "threads": "0"}, **common)
        files = {"1/model.onnx": artifact.path, "1/model.py": python_model_code("OnnxModel")}
    files["config.pbtxt"] = config.to_pbtxt()
    return ServedModel(name, artifact.role, config, files, str(artifact.path))


def _tensor_dict(tensors: tuple[TritonTensor, ...]) -> list[dict]:
    return [{"name": t.name, "dtype": t.dtype.name, "dims": list(t.dims)} for t in tensors]


def _pipeline_model(
    detector: tuple[_Artifact, ServedModel], embedder: tuple[_Artifact, ServedModel], options: RepositoryOptions
) -> ServedModel:
    """Encoded photos in, faces out: facebatch's own decode, NMS and alignment, with the
    detector and the embedder called through BLS (so their dynamic batchers merge the calls of
    every pipeline instance). One request carries any number of photos; every output has one
    row per face, and FACE_IMAGE_INDEX says which photo of the request it was found in."""
    (det, det_model), (emb, emb_model) = detector, embedder
    if det.spec.head is None or not det.spec.head.use_kps:
        raise SpecError(
            f"{det.path.name} finds no landmarks, and --pipeline aligns faces on 5 landmarks; "
            "serve a detector with landmarks (the *_kps / *_bnkps variants)"
        )
    max_batch = det_model.config.max_batch_size
    dim = emb.spec.embedding_size or emb.outputs[0].dims[-1]
    outputs = [
        TritonTensor(FACE_OUTPUTS[0], np.dtype(np.int32), (1,)),
        TritonTensor(FACE_OUTPUTS[1], np.dtype(np.float32), (4,)),
        TritonTensor(FACE_OUTPUTS[2], np.dtype(np.float32), (1,)),
        TritonTensor(FACE_OUTPUTS[3], np.dtype(np.float32), (5, 2)),
        TritonTensor(FACE_OUTPUTS[4], np.dtype(np.float32), (dim,)),
    ]
    config = ModelConfig(
        name=PIPELINE_MODEL,
        backend="python",
        max_batch_size=max_batch,
        inputs=(TritonTensor(IMAGES_INPUT, np.dtype(object), (1,)),),
        outputs=tuple(outputs),
        dynamic_batching=options.batching(preferred_batch_sizes(det.profile_opt, max_batch)),
        instance_kind="cpu",
        instance_count=options.instances,
        parameters={
            "det_thresh": str(DET_THRESH),
            "nms_thresh": str(NMS_THRESH),
            "max_faces": "0",
            "max_photo_pixels": str(options.max_photo_pixels),
            "max_batch_pixels": str(options.batch_pixels),
        },
    )
    description = {
        "format": "facebatch-triton-pipeline/1",
        "detector": {
            "model": det_model.name,
            "spec": spec_to_dict(det.spec),
            "size": list(det.detector_size),
            "max_batch_size": max_batch,
            "inputs": _tensor_dict(det.inputs),
            "outputs": _tensor_dict(det.outputs),
        },
        "embedder": {
            "model": emb_model.name,
            "spec": spec_to_dict(emb.spec),
            "max_batch_size": emb_model.config.max_batch_size,
            "inputs": _tensor_dict(emb.inputs),
            "outputs": _tensor_dict(emb.outputs),
        },
    }
    files: dict[str, Path | str] = {
        "config.pbtxt": config.to_pbtxt(),
        f"1/{PIPELINE_FILE}": json.dumps(description, indent=2) + "\n",
        "1/model.py": python_model_code("FacePipelineModel"),
    }
    return ServedModel(PIPELINE_MODEL, "pipeline", config, files, f"{det.path.name} + {emb.path.name}")


def plan_repository(artifacts: list[Path], out: Path, options: RepositoryOptions) -> TritonRepository:
    """Read every artifact and decide every file; nothing is written yet."""
    if not artifacts:
        raise SpecError("name at least one artifact to serve")
    read = [read_artifact(Path(p), options.runtime, options.max_batch) for p in artifacts]
    models: list[ServedModel] = []
    for artifact in read:
        name = _model_name(artifact.engine or artifact.path)
        if name in (m.name for m in models) or name == PIPELINE_MODEL:
            raise SpecError(f"two artifacts would both be served as {name!r}; rename one of the files")
        models.append(_served_model(artifact, options, name))
    if options.pipeline:
        roles = {
            role: [(a, m) for a, m in zip(read, models, strict=False) if a.role == role]
            for role in ("detector", "embedder")
        }
        for role, found in roles.items():
            if len(found) != 1:
                names = ", ".join(a.path.name for a, _ in found) or "none"
                raise SpecError(f"--pipeline needs exactly one {role} among the artifacts, got {len(found)} ({names})")
        models.append(_pipeline_model(roles["detector"][0], roles["embedder"][0], options))
    return TritonRepository(Path(out), models, options.runtime)


def triton_repository_from_artifacts(artifacts: list[Path], out: Path, options: RepositoryOptions) -> TritonRepository:
    """``facebatch triton``: plan every model, then write them."""
    return write_repository(plan_repository(artifacts, out, options), options)


# -- writing -------------------------------------------------------------------------------------
# The names facebatch writes in a repository: a manifest listing anything else was not written by
# facebatch (or was edited), and --force refuses it rather than remove what it names.
MODEL_FILES = ("config.pbtxt", "1/model.onnx", f"1/model{PLAN_SUFFIX}", "1/model.py", f"1/{PIPELINE_FILE}")
REPOSITORY_FILE = re.compile(
    rf"README\.md|{MODEL_NAME_PATTERN}/(?:{'|'.join(re.escape(name) for name in MODEL_FILES)})"
)
MANIFEST_FORMAT = "facebatch-triton/2"  # /2 records each file's sha256; /1 (older facebatch) listed names only
MANIFEST_FORMATS = ("facebatch-triton/1", MANIFEST_FORMAT)


@dataclass(frozen=True)
class _Written:
    """What a repository's manifest says facebatch wrote there: the names (checked to be facebatch's
    own, inside the folder, no link on the way) and the sha256 of each file whose write finished."""

    files: tuple[str, ...]
    sha256: dict[str, str]


def _unreadable(manifest: Path) -> OutputError:
    return OutputError(
        f"{manifest} is unreadable, so facebatch cannot tell which files it wrote there; "
        "pick an empty --out or remove that folder yourself"
    )


def _previous_files(out: Path) -> _Written | None:
    """The manifest of an earlier ``facebatch triton`` into ``out``, its names validated (None: there is none)."""
    manifest = out / MANIFEST
    refuse_symlinks(out, MANIFEST, "the repository's manifest")
    if not manifest.is_file():
        return None
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        files, hashes = record["files"], record.get("sha256", {})
        if record["format"] not in MANIFEST_FORMATS or not isinstance(files, list) or not isinstance(hashes, dict):
            raise _unreadable(manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise _unreadable(manifest) from None
    for name in files:  # each one of facebatch's names, inside out, no link on the way; else refused by name
        member(out, name, REPOSITORY_FILE, f"{manifest}'s list of files")
    if not all(isinstance(sha, str) and SHA256.fullmatch(sha) for sha in hashes.values()):
        raise _unreadable(manifest)
    return _Written(tuple(files), {name: hashes[name] for name in files if name in hashes})


def _content_sha256(content: Path | str) -> str:
    return file_sha256(content) if isinstance(content, Path) else hashlib.sha256(content.encode("utf-8")).hexdigest()


# why a listed file may not be removed, as said in the refusal
NOT_A_FILE = "no longer a file (a folder or a special file stands there)"
CHANGED = "changed since facebatch wrote it (sha256 differs from the one recorded)"
UNRECORDED = (
    "no sha256 recorded (written by an older facebatch, or by a run that stopped before recording it) and not "
    "byte for byte what this run writes"
)


def _why_not_removable(out: Path, rel: str, previous: _Written, planned: dict[str, Path | str]) -> str | None:
    """Why the listed ``rel`` may not be removed (None: it is what facebatch wrote, or is gone)."""
    path = out / rel
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        return NOT_A_FILE
    recorded = previous.sha256.get(rel)
    if recorded is not None:
        return None if file_sha256(path) == recorded else CHANGED
    if rel in planned and file_sha256(path) == _content_sha256(planned[rel]):
        return None  # an unfinished run's (or an older facebatch's) file, byte for byte what this run writes
    return UNRECORDED


def _remove_emptied_folders(out: Path, names: tuple[str, ...]) -> None:
    """The folders facebatch's names imply (<model>/1, <model>), deepest first, when empty and not a link."""
    folders = {parent for rel in names for parent in PurePosixPath(rel).parents if parent != PurePosixPath(".")}
    for folder in sorted(folders, key=lambda f: -len(f.parts)):
        path = out / folder
        try:
            if stat.S_ISDIR(path.lstat().st_mode) and not any(path.iterdir()):
                path.rmdir()
        except FileNotFoundError:
            continue


def _clear_for_writing(out: Path, planned: dict[str, Path | str], force: bool) -> None:
    """Refuse a non-empty ``out`` unless ``force``; with it, remove only what facebatch wrote there
    before (its manifest), each file only while it still has the sha256 recorded when it was
    written, and refuse when a file we did not write stands in the way. Everything is checked
    before the first file is removed."""
    refuse_symlinked_folder(out, "the --out of facebatch triton")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; pick another --out")
    present = [p for p in out.iterdir()] if out.is_dir() else []
    if not present:
        return
    if not force:
        raise OutputError(
            f"{out} exists and is not empty; pass --force to replace what facebatch wrote there, or pick another --out"
        )
    previous = _previous_files(out)
    wanted = set(planned) | {MANIFEST}
    for rel in sorted(wanted):  # nothing of ours is written through a link
        refuse_symlinks(out, rel, "this run's list of files")
    ours = (*previous.files, MANIFEST) if previous else ()
    foreign = [rel for rel in sorted(wanted) if os.path.lexists(out / rel) and rel not in ours]
    if foreign:
        raise OutputError(
            f"--force replaces only files facebatch wrote, and these in {out} are not: {', '.join(foreign)}; "
            "move them away or pick another --out"
        )
    if previous is None:
        return
    refused: dict[str, list[str]] = {}
    for rel in previous.files:
        if why := _why_not_removable(out, rel, previous, planned):
            refused.setdefault(why, []).append(rel)
    if refused:
        said = "; ".join(f"{', '.join(names)}: {why}" for why, names in refused.items())
        raise OutputError(
            f"--force removes only files facebatch wrote and nobody changed since, and in {out}: {said}; "
            "move them away or pick another --out"
        )
    for rel in ours:
        (out / rel).unlink(missing_ok=True)
    _remove_emptied_folders(out, previous.files)


def _write_file(target: Path, content: Path | str) -> str:
    """Write ``content`` (a file to copy, or text) atomically to ``target``; the sha256 of what was written."""
    with atomic_path(target) as tmp:
        if isinstance(content, Path):
            shutil.copyfile(content, tmp)
            sha256 = file_sha256(tmp)
        else:
            data = content.encode("utf-8")
            tmp.write_bytes(data)
            sha256 = hashlib.sha256(data).hexdigest()
    return sha256


def write_repository(repository: TritonRepository, options: RepositoryOptions) -> TritonRepository:
    """Write the planned files (each atomically), the README and the manifest of what was written."""
    out = repository.path
    files: dict[str, Path | str] = {
        f"{m.name}/{rel}": content for m in repository.models for rel, content in m.files.items()
    }
    files["README.md"] = repository_readme(repository)
    unlisted = [rel for rel in files if not REPOSITORY_FILE.fullmatch(rel)]
    assert not unlisted, f"{unlisted} would be refused by a later --force: add them to MODEL_FILES"
    _refuse_sources_inside(out, files)
    _clear_for_writing(out, files, options.force)
    ensure_writable_dir(out)
    # listed before they are written: a run that stops half-way leaves files a later --force may replace (by the same
    # bytes only, since their hashes are recorded after them)
    _write_manifest(out, repository, list(files), {})
    hashes = {rel: _write_file(out / rel, content) for rel, content in files.items()}
    _write_manifest(out, repository, list(files), hashes)
    repository.written = list(hashes)
    return repository


def _refuse_sources_inside(out: Path, files: dict[str, Path | str]) -> None:
    """An artifact read from inside ``out`` would be removed by --force before it is copied (the only copy
    of a model, say): refused before anything is touched."""
    root = os.path.realpath(out).rstrip(os.sep) + os.sep
    for content in files.values():
        if isinstance(content, Path) and os.path.realpath(content).startswith(root):
            raise OutputError(
                f"{content} is inside --out {out}, which this run replaces; copy it out of the repository first, "
                "or pick another --out"
            )


def _write_manifest(out: Path, repository: TritonRepository, files: list[str], hashes: dict[str, str]) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        "runtime": repository.runtime,
        "models": [m.name for m in repository.models],
        "files": files,
        "sha256": hashes,  # each file's, recorded once it is written: --force removes a file only while it matches
    }
    _write_file(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
