"""One small error hierarchy; the CLI turns each into one clear line and a non-zero exit."""

from __future__ import annotations


class FacebatchError(Exception):
    """Base class: the message says what is wrong and what to change."""

    exit_code = 2  # bad input unless a subclass says otherwise


class SpecError(FacebatchError):
    """Unknown model, impossible size, inconsistent spec or config."""


class WeightsError(FacebatchError):
    """Missing, corrupt, untrusted or mismatching weights."""


class ExportError(FacebatchError):
    """The export, simplification or the proof of the exported graph failed."""

    exit_code = 1


class EngineError(FacebatchError):
    """A runtime (onnxruntime, TensorRT) could not be created or run."""

    exit_code = 1


class VerificationFailed(FacebatchError):
    """A check ran and the model failed it."""

    exit_code = 1


class OutputError(FacebatchError):
    """An output location cannot be written."""
