"""What a served model is made from: an ONNX artifact (its tensors from the real graph, without the
batch axis, which must be symbolic on every one) or, for TensorRT, a plan (checked against its sidecar,
within its profile, its tensor types from the ONNX it was built from)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from facebatch.configs.license import UNKNOWN, License, license_of
from facebatch.configs.model_file import ModelFile, read_model_file
from facebatch.configs.spec import ModelSpec
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.engines.runners.engine_record import EngineRecord, find_engine, read_engine_record
from facebatch.engines.triton.model_config import TritonTensor

PLAN_SUFFIX = ".plan"


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
                f"repair it with fix (graph surgery that makes the batch axis symbolic: {path.stem}_batch.onnx) or "
                "export it again",
                field="artifacts",
            )
        rest = tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape[1:])
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
        return TritonTensor(value.name, dtype, rest)

    inputs = tuple(tensor(v) for v in model.graph.input if v.name not in initializers)
    return inputs, tuple(tensor(v) for v in model.graph.output)


@dataclass
class Artifact:
    """What a served model is made from: the spec, the tensors, the file to copy and its profile."""

    path: Path
    spec: ModelSpec
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    detector_size: tuple[int, int]
    profile_opt: int
    profile_max: int
    engine: Path | None = None  # tensorrt: the plan served
    license: License = UNKNOWN  # of its weights: the README and config.pbtxt say it

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


def _read_engine(plan: Path, max_batch: int | None) -> Artifact:
    record = read_engine_record(plan)
    if file_sha256(plan) != record.sha256:
        raise SpecError(
            f"engine {plan.name} is not the one its sidecar {plan.with_suffix('.json').name} describes (sha256 differs); "
            "build it again",
            field="artifacts",
        )
    batch = record.profile.batch
    if max_batch is not None and max_batch > batch.max:
        raise SpecError(
            f"max_batch {max_batch} is more than engine {plan.name} takes (built for batch {batch.min}-{batch.max}); "
            f"ask for at most {batch.max}, or build the engine again with a batch max of {max_batch}",
            field="max_batch",
        )
    source = _engine_source_onnx(plan, record)
    target, inputs, outputs = _read_onnx(source)
    # an engine takes its profile's shape only (a --dynamic-size ONNX was built at one size)
    shapes = record.profile.shapes
    inputs = tuple(replace(t, dims=tuple(shapes[t.name][2][1:])) if t.name in shapes else t for t in inputs)
    size = record.profile.size
    return Artifact(
        plan,
        record.spec,
        inputs,
        outputs,
        (int(size[0]), int(size[1])),
        batch.opt,
        batch.max,
        engine=plan,
        license=license_of(target),
    )


def read_artifact(path: Path, runtime: str, max_batch: int | None) -> Artifact:
    """An ONNX artifact (or, for tensorrt, a plan or the ONNX whose built engine is served)."""
    path = Path(path)
    if path.suffix == PLAN_SUFFIX:
        if runtime != "tensorrt":
            raise SpecError(
                f"{path.name} is a TensorRT engine; serve it with the tensorrt runtime, or pass its ONNX artifact",
                field="runtime",
            )
        return _read_engine(path, max_batch)
    target, inputs, outputs = _read_onnx(path)
    if runtime == "tensorrt":
        return _read_engine(find_engine(path, target.sha256, target.spec), max_batch)
    spec = target.spec
    return Artifact(
        path, spec, inputs, outputs, spec.input_size, spec.batch.opt, spec.batch.max, license=license_of(target)
    )
