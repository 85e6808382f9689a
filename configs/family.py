"""The one rule for "what kind of model is this ONNX file?", used by export (ONNX weights),
verify, fix and describe alike.

* a facebatch artifact says so itself: the family of the spec in its metadata;
* an SCRFD detector, anyone's: three outputs per kind (score, bbox, and kps when it has
  landmarks), told apart by their last dim (1, 4, 10 channels);
* a face embedder: one output;
* anything else: not a face model facebatch knows (None).
"""

from __future__ import annotations

from collections import Counter

import onnx

from facebatch.configs.scrfd import OUTPUT_CHANNELS, STRIDES
from facebatch.configs.spec import Family
from facebatch.configs.spec_io import stored_spec
from facebatch.core.onnx_graph import io_dims


def scrfd_landmarks(model: onnx.ModelProto) -> bool | None:
    """For a graph whose outputs are SCRFD heads: whether it has landmarks; None if its
    outputs are not one score/bbox(/kps) map per stride."""
    dims = io_dims(model)
    channels = Counter(dims[o.name][-1] if dims[o.name] else None for o in model.graph.output)
    per_kind = len(STRIDES)
    with_kps = {c: per_kind for c in OUTPUT_CHANNELS.values()}
    without = {OUTPUT_CHANNELS["score"]: per_kind, OUTPUT_CHANNELS["bbox"]: per_kind}
    if channels == Counter(with_kps):
        return True
    if channels == Counter(without):
        return False
    return None


def detect_family(model: onnx.ModelProto) -> Family | None:
    stored = stored_spec(model)
    if stored is not None:
        return stored.family
    if scrfd_landmarks(model) is not None:
        return Family.SCRFD
    if len(model.graph.output) == 1:
        return Family.EMBEDDER
    return None


def describe_family(family: Family | None) -> str:
    """How messages name what a file is."""
    return {
        Family.SCRFD: "an SCRFD face detector",
        Family.ARCFACE: "an ArcFace embedder exported by facebatch",
        Family.EMBEDDER: "a face embedder",
        None: "neither an SCRFD detector (6 or 9 outputs of 1/4/10 channels) nor an embedder (one output)",
    }[family]
