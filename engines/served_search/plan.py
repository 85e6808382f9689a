"""face_search's folder in a repository: its config (photos in, one JSON answer per photo out; the pipeline's
batcher bounds), its model.py and 1/search.json: the gallery's absolute path and the sha256 of the models served,
which the gallery must match. The gallery is referenced, not copied: it grows (index appends photos while the
server runs, and the served model reloads each committed version), and a copy would be a second biometric store
to keep private and in step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from facebatch.core.environment import file_sha256
from facebatch.engines.gallery.defaults import DEFAULT_TOP_K
from facebatch.engines.gallery.manifest import read_manifest
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
from facebatch.engines.runners.engine_record import read_engine_record
from facebatch.engines.served_search.answers import MATCHES_OUTPUT
from facebatch.engines.served_search.checks import ROLES, check_gallery_models, check_searchable
from facebatch.engines.triton.artifacts import PLAN_SUFFIX
from facebatch.engines.triton.defaults import IMAGES_INPUT, PIPELINE_FILE, PIPELINE_MODEL, SEARCH_FILE, SEARCH_MODEL
from facebatch.engines.triton.model_config import ModelConfig, TritonTensor
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.repository import TritonRepository
from facebatch.engines.triton.served_models import ServedModel, python_model_code

SEARCH_FORMAT = "facebatch-triton-search/1"
SEARCH_CODE = "facebatch.engines.served_search.model"


def served_sha256(model: ServedModel) -> str:
    """The sha256 of the model file a served detector or embedder was made from: the ONNX itself, or for a TensorRT
    plan the ONNX it was built from (as its sidecar records; the gallery records ONNX files)."""
    source = Path(model.source)
    if source.suffix == PLAN_SUFFIX:
        return str(read_engine_record(source).source_onnx.get("sha256", ""))
    return file_sha256(source)


def search_model(repository: TritonRepository, gallery: Path, options: RepositoryOptions) -> ServedModel:
    """face_search over ``gallery``, refused in one line (nothing written yet) when the gallery is not one facebatch
    wrote, has no index over faces, or was made with other models than the repository serves."""
    pipeline = repository.model("pipeline")
    assert pipeline is not None, "RepositoryOptions refuses a gallery without the pipeline"
    root = Path(os.path.abspath(gallery))
    manifest = read_manifest(root)  # a gallery facebatch wrote: refused by name otherwise, nothing read further
    check_searchable(root, manifest)
    served = {role: repository.model(role) for role in ROLES}
    sha256 = {role: served_sha256(model) for role, model in served.items() if model is not None}
    described = json.loads(str(pipeline.files[f"1/{PIPELINE_FILE}"]))
    detector_size = [int(v) for v in described["detector"]["size"]]
    check_gallery_models(root, manifest, sha256, detector_size)
    config = ModelConfig(
        name=SEARCH_MODEL,
        backend="python",
        max_batch_size=pipeline.config.max_batch_size,
        inputs=(TritonTensor(IMAGES_INPUT, np.dtype(object), (1,)),),
        outputs=(TritonTensor(MATCHES_OUTPUT, np.dtype(object), (1,)),),
        dynamic_batching=pipeline.config.dynamic_batching,  # the same queue bounds as the pipeline's
        instance_kind="cpu",
        instance_count=options.instances,
        comment=pipeline.config.comment,
        parameters={"top_k": str(DEFAULT_TOP_K), "threshold": str(DEFAULT_MATCH_THRESHOLD)},
    )
    description = {
        "format": SEARCH_FORMAT,
        "gallery": str(root),
        "pipeline": PIPELINE_MODEL,
        "sha256": sha256,
        "detector_size": detector_size,
    }
    files: dict[str, Path | str] = {
        "config.pbtxt": config.to_pbtxt(),
        f"1/{SEARCH_FILE}": json.dumps(description, indent=2) + "\n",
        "1/model.py": python_model_code("FaceSearchModel", SEARCH_CODE),
    }
    return ServedModel(SEARCH_MODEL, "search", config, files, f"{pipeline.source} + {root}", pipeline.licenses)
