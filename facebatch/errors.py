"""``facebatch.errors``: the error classes the Python API raises (they live in ``facebatch.core.errors``;
this public name stays for users who catch them)."""

from facebatch.core.errors import (  # noqa: F401
    EngineError,
    ExportError,
    FacebatchError,
    OutputError,
    SpecError,
    VerificationFailed,
    WeightsError,
)
