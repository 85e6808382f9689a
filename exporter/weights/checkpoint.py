"""PyTorch checkpoints: mmdet ``.pth`` (``{"meta", "state_dict"[, "optimizer"]}``) or a bare
state dict (arcface_torch ``backbone.pth``), loaded with ``weights_only=True`` and strictly.

Any mismatch is listed in the error (missing keys, unexpected keys, shape mismatches),
so a wrong variant or a wrong file is obvious from one line.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from facebatch.core.errors import WeightsError
from facebatch.core.filetypes import file_kind

OPTIONAL_KEYS = ("integral.project", "num_batches_tracked")  # buffers some checkpoints lack
LISTED = 6


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
PICKLE_PROTO = b"\x80"  # torch's legacy format and plain pickles start with a protocol opcode
ONNX_HINT = " (ONNX weights take a .onnx name)"


def _not_a_checkpoint(path: Path) -> str | None:
    """What the file is instead, if it plainly is not a PyTorch checkpoint."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith((ZIP_MAGIC, PICKLE_PROTO)):
        return None
    kind = file_kind(path)
    if kind is None:
        return "not a zip archive or a pickle"
    return kind + (ONNX_HINT if kind.startswith("an ONNX") else "")


def _refused_object(message: str) -> str:
    """What a weights_only load refused, from torch's paragraph (which also advises turning the
    protection off: that advice is not repeated)."""
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"global:? ([\w.]+)", message, flags=re.I)
    return f"it tries to load the global {found.group(1)}" if found else "it holds objects other than tensors"


def first_sentence(message: str, limit: int = 200) -> str:
    """A library's paragraph cut to the sentence that says what happened."""
    text = " ".join(message.split())
    cut = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return cut if len(cut) <= limit else cut[: limit - 1] + "…"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    instead = _not_a_checkpoint(path)
    if instead is not None:
        raise WeightsError(f"{path} is not a PyTorch checkpoint (it is {instead}); pass the .pth that torch.save wrote")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses anyway
            warnings.simplefilter("ignore")
            payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} was refused as an untrusted pickle: {_refused_object(str(exc))}, and facebatch loads checkpoints with "
            "weights_only=True (tensors and plain containers only); where you trust the file, re-save its weights as a plain "
            "state dict: torch.save(model.state_dict(), 'weights.pth')"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise WeightsError(
            f"{path} cannot be read as a PyTorch checkpoint (truncated or corrupt?): {first_sentence(str(exc))}"
        ) from None
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"{path} holds no state dict (expected a dict with 'state_dict' or a bare state dict)")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(state):
        raise WeightsError(
            f"{path}: state dict has non-tensor entries: {', '.join(sorted(set(state) - set(tensors))[:LISTED])}"
        )
    if all(k.startswith("module.") for k in tensors):  # saved from DataParallel / DDP
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def _listing(label: str, names: list[str]) -> str:
    shown = ", ".join(names[:LISTED]) + (f" … (+{len(names) - LISTED})" if len(names) > LISTED else "")
    return f"{len(names)} {label}: {shown}"


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load every tensor; refuse with a full account when keys or shapes do not match."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(OPTIONAL_KEYS))
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = sorted(
        f"{k} {list(state[k].shape)} vs {list(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = [
        _listing(label, names)
        for label, names in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches (file vs model)", mismatched),
        )
        if names
    ]
    if problems:
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems))
    merged = {k: state.get(k, v) for k, v in expected.items()}
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in merged.items()}, strict=True)
