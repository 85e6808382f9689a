"""facebatch: batch-safe ONNX re-exports of InsightFace face models, verified and benchmarked."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facebatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
