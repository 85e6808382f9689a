"""The backends by name, what each runs and what it needs installed. Kept free of any
runtime import, so that the command line can list them in ``--help`` without paying for
them; ``factory`` builds the runners."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from facebatch.core.errors import SpecError

GPU_EXTRA = "pip install 'facebatch[gpu]' (onnxruntime-gpu, with CUDA and cuDNN)"


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    install: str  # what to install when it is missing; "" when it is always there


BACKENDS = {
    b.name: b
    for b in (
        Backend("ort-cpu", "onnxruntime, CPU execution provider", ""),
        Backend("ort-cuda", "onnxruntime, CUDA execution provider", GPU_EXTRA),
        Backend(
            "ort-trt",
            "onnxruntime, TensorRT execution provider (fp16, engine cache, batch profile from the spec)",
            f"{GPU_EXTRA} and the TensorRT libraries",
        ),
        Backend("openvino", "OpenVINO runtime on the CPU (f32)", "pip install 'facebatch[openvino]'"),
        Backend(
            "torch",
            "the artifact's PyTorch model rebuilt from its metadata and weights (CUDA with FP16 autocast when present)",
            "",
        ),
        Backend(
            "trt",
            "the TensorRT engine built from the artifact (build/engines/NAME_fp16_b1-32.plan)",
            "pip install 'facebatch[tensorrt]' on a CUDA machine, then build the engine",
        ),
    )
}


def parse_backends(value: str | Sequence[str], field: str = "backends") -> tuple[str, ...]:
    """Backend names, from a comma-separated string or a sequence of names (each may hold commas too), in
    order and without repeats; an unknown name is refused, with the closest known one. ``field``: the option
    the names came from, for the error."""
    parts = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(part, str) for part in parts):
        raise SpecError(f"{field}: expected backend names, got {value!r}", field=field)
    names = tuple(dict.fromkeys(n.strip() for part in parts for n in part.split(",") if n.strip()))
    if not names:
        raise SpecError(f"{field}: no backend named; known: {', '.join(BACKENDS)}", field=field)
    for name in names:
        if name not in BACKENDS:
            close = difflib.get_close_matches(name, list(BACKENDS), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SpecError(f"unknown backend {name!r}; {hint}known: {', '.join(BACKENDS)}", field=field)
    return names
