"""One small error hierarchy; the CLI turns each into one clear line and a non-zero exit.

An error about one input names it by its field (``field="lanes"``: the Options field, or the
parameter, it is about) and says it in words a Python caller reads ("lanes must be at least 1").
The library never names a command-line flag or a ``facebatch`` command; the CLI maps the field
to its flag when it prints the line (``facebatch.cli.errors``)."""

from __future__ import annotations


class FacebatchError(Exception):
    """Base class: the message says what is wrong and what to change."""

    exit_code = 2  # bad input unless a subclass says otherwise

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the input the message is about, as the library names it (None: no one input)


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
