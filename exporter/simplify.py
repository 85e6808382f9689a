"""``simplify_onnx`` with onnxsim, leaving the symbolic axes symbolic.

onnxsim freezes any input shape it is given (``overwrite_input_shapes``, formerly
``input_shapes``), so we give it none and prove afterwards, from the simplified graph's
declared shapes, that every spec'd symbolic axis survived.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import onnx

from facebatch.configs.spec import ModelSpec
from facebatch.core.errors import ExportError
from facebatch.exporter.torch_to_onnx import name_axes_from_spec, prove_axes


def simplify_onnx(source: Path, target: Path, spec: ModelSpec) -> Path:
    import onnxsim  # heavy; imported on use

    model = onnx.load(str(source))
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            simplified, ok = onnxsim.simplify(model, check_n=0)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnxsim failed on {source.name}: {detail}") from exc
    if not ok:
        raise ExportError(f"onnxsim could not validate the simplified {source.name}")
    simplified = name_axes_from_spec(simplified, spec)
    prove_axes(simplified, spec, "simplification")
    try:
        onnx.checker.check_model(simplified, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"onnx.checker rejects the simplified graph: {str(exc).splitlines()[0]}") from exc
    onnx.save(simplified, str(target))
    return Path(target)
