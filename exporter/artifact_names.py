"""The default file name of an exported artifact: the spec's (``scrfd_10g_320_batch.onnx``,
``arcface_w600k_r50_batch.onnx``, ``…_seeded_batch.onnx``), with the weights file's stem in it where the
weights are not the model's own release file, so that two different weight files exported at one size do
not take one name (``scrfd_10g_320_my_finetune_batch.onnx``). A stem that names the model (``det_10g``,
``scrfd_10g_bnkps``, ``w600k_r50``) keeps the plain name; a generic one (arcface_torch's ``backbone``)
gets the first 8 hex digits of the weights' sha256 beside it."""

from __future__ import annotations

import re
from pathlib import Path

from facebatch.configs.arcface import MODEL_PREFIX, RELEASES
from facebatch.configs.spec import Family, ModelSpec
from facebatch.exporter.metadata import WeightsInfo

BATCH_SUFFIX = "_batch.onnx"
# stems every trainer writes, which say nothing about which weights they hold
GENERIC_STEMS = frozenset({"backbone", "model", "checkpoint", "weights", "latest", "best", "last", "final"})
TAG_CHARACTERS = re.compile(r"[^A-Za-z0-9.+-]+")  # anything else becomes '_' (a file name, one word)


def model_stems(spec: ModelSpec) -> set[str]:
    """The stems of the files a model's own weights come in: its release files and checkpoints."""
    if spec.family is Family.SCRFD:
        core = spec.name.removeprefix("scrfd_").removesuffix("_bnkps")  # 10g, 2.5g, 500m, 500m_nokps …
        return {spec.name, f"scrfd_{core}", f"det_{core}"}
    network = spec.name.removeprefix(MODEL_PREFIX)
    release = RELEASES.get(network)
    return {spec.name, network} | ({f"{release}_{network}", f"{MODEL_PREFIX}{release}_{network}"} if release else set())


def weights_tag(spec: ModelSpec, weights: WeightsInfo | None) -> str | None:
    """What the default name says about the weights: None for seeded weights and the model's own files."""
    if weights is None or weights.kind == "seeded" or not weights.path:
        return None
    stem = Path(weights.path).stem
    if stem.lower() in {s.lower() for s in model_stems(spec)}:
        return None
    tag = TAG_CHARACTERS.sub("_", stem).strip("_")[:40] or "weights"
    if stem.lower() in GENERIC_STEMS and weights.sha256:
        tag = f"{tag}-{weights.sha256[:8]}"
    return tag


def default_artifact_name(spec: ModelSpec, weights: WeightsInfo | None = None) -> str:
    """``spec.default_filename`` with the weights' tag before ``_batch.onnx`` (see the module's docstring)."""
    tag = weights_tag(spec, weights)
    name = spec.default_filename
    if tag is None or not name.endswith(BATCH_SUFFIX):
        return name
    return f"{name.removesuffix(BATCH_SUFFIX)}_{tag}{BATCH_SUFFIX}"
