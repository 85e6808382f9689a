"""facebatch: batch-safe ONNX re-exports of InsightFace face models, verified and benchmarked.

The Python API (``facebatch.api``; importing this package stays light, each name loads on first
use): ``export``, ``verify_model``, ``fix``, ``convert``, ``quantize``, ``prove_bf16``, ``bench``, ``detect``, ``embed``,
``compare``, ``compare_pairs``, ``index``, ``search``, ``triton``, ``serve``, ``release``, ``check_release``, ``open_pipeline``,
``photos``, ``read_model_file`` and the result and option types: every command's use case, with the
same proofs and refusals as the command line.
"""

from __future__ import annotations

import os
from typing import Any

from facebatch.core.version import __version__

# Imported from a work tree that is not installed (PYTHONPATH=the tree; 'make gpu-check' on a machine where nothing
# may be installed): the subpackages pyproject.toml maps with package-dir (configs/, engines/, exporter/, verify/)
# live beside this folder, so the tree's root is searched after it. An installed copy finds them as mapped.
_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_TREE, "pyproject.toml")) and os.path.isfile(
    os.path.join(_TREE, "configs", "__init__.py")
):
    __path__.append(_TREE)  # type: ignore[name-defined]  # noqa: F821 (a package's __path__)

# OpenCV reads its own cap on one decode from the environment once, when cv2 loads: set it (the photo pixel limit's
# default) before any module of ours imports cv2, as a backstop behind the header checks (engines/pipeline/image_header.py;
# imported after the search path above, through which a work tree's engines/ is found)
from facebatch.engines.pipeline.image_header import cap_opencv_decodes as _cap_opencv_decodes  # noqa: E402

_cap_opencv_decodes()

API = (
    "export",
    "verify_model",
    "convert",
    "quantize",
    "prove_bf16",
    "fix",
    "build",
    "describe",
    "bench",
    "release",
    "check_release",
    "card",
    "index",
    "search",
    "detect",
    "embed",
    "compare",
    "compare_pairs",
    "triton",
    "serve",
    "photos",
    "Run",
    "open_pipeline",
    "FacePipeline",
    "PipelineOptions",
    "PipelineSettings",
    "ImageFaces",
    "read_model_file",
    "ModelFile",
    "ReleaseOptions",
    "ModelToExport",
    "ModelRequest",
    "ExportResult",
    "VerifyReport",
    "ConvertResult",
    "QuantizeResult",
    "Bf16ProofOptions",
    "Bf16ProofResult",
    "FixResult",
    "BenchReport",
    "ReleaseResult",
    "CheckResult",
    "CardOptions",
    "CardResult",
    "BenchOptions",
    "BenchResult",
    "TritonOptions",
    "TritonResult",
    "RepositoryOptions",
    "ServeOptions",
    "ServeResult",
)
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use: ``facebatch --help`` and ``import facebatch`` stay quick."""
    if name in API:
        from facebatch import api

        return getattr(api, name)
    raise AttributeError(f"module 'facebatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(API))
