"""Each artifact as a Triton model (its config.pbtxt and the files of its folder), and the face
pipeline: a python-backend model that runs facebatch's decode, NMS and alignment and calls the
detector and the embedder through BLS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.engines.triton.artifacts import Artifact
from facebatch.engines.triton.defaults import FACE_OUTPUTS, IMAGES_INPUT, PIPELINE_FILE, PIPELINE_MODEL
from facebatch.engines.triton.model_config import ModelConfig, TritonTensor, preferred_batch_sizes
from facebatch.engines.triton.options import RepositoryOptions

MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
MODEL_NAME = re.compile(rf"^{MODEL_NAME_PATTERN}$")


@dataclass
class ServedModel:
    """One model of the repository: its config and the files of its folder (relative path →
    the source file to copy, or the text to write)."""

    name: str
    role: str  # detector | embedder | pipeline | search
    config: ModelConfig
    files: dict[str, Path | str] = field(default_factory=dict)
    source: str = ""  # the artifact it serves
    licenses: tuple[str, ...] = ()  # of the weights it serves, as lines (configs/license.py)


PYTHON_MODEL_CODE = """\
# Written by facebatch. The model's code is facebatch's own ({module}), so the python
# backend's environment needs facebatch and its dependencies (see the repository's README.md).
import triton_python_backend_utils as pb_utils

from {module} import {cls}


class TritonPythonModel({cls}):
    backend = pb_utils  # the python backend's utilities, handed to facebatch's code
"""
PYTHON_MODELS = "facebatch.engines.triton.python_models"


def python_model_code(cls: str, module: str = PYTHON_MODELS) -> str:
    return PYTHON_MODEL_CODE.format(module=module, cls=cls)


def model_name(path: Path) -> str:
    name = path.stem
    if not MODEL_NAME.match(name):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("._-") or "model"
    return name


def served_model(artifact: Artifact, options: RepositoryOptions, name: str) -> ServedModel:
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
        comment=license_comment([artifact]),
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
    return ServedModel(name, artifact.role, config, files, str(artifact.path), (artifact.license.line(),))


def license_comment(artifacts: list[Artifact]) -> str:
    """config.pbtxt's licence line: whose weights the model serves, on what terms."""
    return "weights licence: " + "; ".join(f"{a.path.name}: {a.license.line()}" for a in artifacts)


def _tensor_dict(tensors: tuple[TritonTensor, ...]) -> list[dict]:
    return [{"name": t.name, "dtype": t.dtype.name, "dims": list(t.dims)} for t in tensors]


def pipeline_model(
    detector: tuple[Artifact, ServedModel], embedder: tuple[Artifact, ServedModel], options: RepositoryOptions
) -> ServedModel:
    """Encoded photos in, faces out: facebatch's own decode, NMS and alignment, with the
    detector and the embedder called through BLS (so their dynamic batchers merge the calls of
    every pipeline instance). One request carries any number of photos; every output has one
    row per face, and FACE_IMAGE_INDEX says which photo of the request it was found in."""
    (det, det_model), (emb, emb_model) = detector, embedder
    if det.spec.head is None or not det.spec.head.use_kps:
        raise SpecError(
            f"{det.path.name} finds no landmarks, and pipeline aligns faces on 5 landmarks; "
            "serve a detector with landmarks (the *_kps / *_bnkps variants)",
            field="pipeline",
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
        comment=license_comment([det, emb]),
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
    return ServedModel(
        PIPELINE_MODEL,
        "pipeline",
        config,
        files,
        f"{det.path.name} + {emb.path.name}",
        (det.license.line(), emb.license.line()),
    )
