"""facebatch: batch-safe ONNX re-exports of InsightFace face models, verified and benchmarked.

The Python API (``facebatch.api``; importing this package stays light, each name loads on first
use): ``export``, ``verify_model``, ``convert``, ``quantize``, ``fix``, ``bench``, ``release``,
``check_release``, ``open_pipeline``, ``photos``, ``read_model_file`` and the result and option types.
"""

from __future__ import annotations

from typing import Any

from facebatch.version import __version__

API = (
    "export",
    "verify_model",
    "convert",
    "quantize",
    "fix",
    "bench",
    "release",
    "check_release",
    "photos",
    "open_pipeline",
    "FacePipeline",
    "PipelineSettings",
    "ImageFaces",
    "read_model_file",
    "ModelFile",
    "ReleaseOptions",
    "ModelRequest",
    "ExportResult",
    "VerifyReport",
    "ConvertResult",
    "QuantizeResult",
    "FixResult",
    "BenchReport",
    "ReleaseResult",
    "CheckResult",
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
