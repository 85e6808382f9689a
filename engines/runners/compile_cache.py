"""OpenVINO's compiled models kept between runs, so that a process does not wait for compilation again.

Compiling det_2.5g.onnx for the CPU took 0.20-0.32 s here and importing the compiled blob 0.05-0.07 s
(mobilefacenet_128d 0.34 s against 0.09 s); a pipeline compiles a detector and an embedder per lane, so a
2-lane run waits about 1 s less before its first photo.

OpenVINO has a cache of its own (``CACHE_DIR``), but it writes each blob in place, so a second process
reading at that moment imports half a file; this one writes each blob to a temporary file and renames it
(whole or absent), and a blob that does not import is compiled again and replaced. A blob is named by the
sha256 of everything that decides what it holds: the model file's bytes, the device and its full name
(another CPU model has other kernels), OpenVINO's version and the compile options (precision above all:
an import without the precision hint runs bf16 where the CPU has it). Imports get the same options.

The folder is ``$FACEBATCH_CACHE_DIR`` or ``$XDG_CACHE_HOME/facebatch/openvino`` (``~/.cache/…``): made
private to the user (0700); one that is a link, is not the user's own, or that others may write to is not
used (a warning says why): a blob is code the runtime executes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facebatch.core.atomic import write_bytes_atomic
from facebatch.core.progress import warn

CACHE_ENV = "FACEBATCH_CACHE_DIR"
BLOB_SUFFIX = ".blob"


def default_cache_folder() -> Path:
    """Where compiled models are kept unless told otherwise."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facebatch" / "openvino"


def usable_folder(folder: Path) -> Path | None:
    """``folder``, made when missing (0700), if it is safe to run blobs from; None (with a warning) if not."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        warn(f"compiled models are not kept: cannot make the cache folder {folder} ({exc.strerror})")
        return None
    why = None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        why = "it is not a plain folder"
    elif info.st_uid != os.getuid():
        why = "another user owns it"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = "others may write to it"
    if why is not None:
        warn(f"compiled models are not kept in {folder}: {why} (a compiled model is code the runtime executes)")
        return None
    return folder


def blob_key(model_sha256: str, device: str, device_name: str, version: str, config: Mapping[str, Any]) -> str:
    """The name of the blob compiled from these: every input that changes what compilation makes."""
    record = {
        "model": model_sha256,
        "device": device,
        "device_name": device_name,
        "openvino": version,
        "config": {k: str(v) for k, v in sorted(config.items())},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


class CompileCache:
    """``compiled = cache.compile(core, model, path, sha256, device, config)``: imported from the folder when a
    blob of the same key is there and imports, else compiled and kept. ``hit`` says which happened last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hit: bool | None = None

    def blob(self, key: str) -> Path:
        return self.folder / f"{key}{BLOB_SUFFIX}"

    def compile(self, core: Any, model: Any, sha256: str, device: str, config: Mapping[str, Any]) -> Any:
        import openvino as ov

        device_name = str(core.get_property(device, "FULL_DEVICE_NAME"))
        blob = self.blob(blob_key(sha256, device, device_name, ov.__version__, config))
        data = _read_own_file(blob)
        if data is not None:
            try:
                compiled = core.import_model(io.BytesIO(data), device, dict(config))
                self.hit = True
                return compiled
            except Exception:  # a blob cut short or from a build that no longer reads it: compiled again below
                pass
        compiled = core.compile_model(model, device, dict(config))
        self.hit = False
        stream = io.BytesIO()
        try:
            compiled.export_model(stream)
            write_bytes_atomic(blob, stream.getvalue(), "compile_cache", mode=0o600)
        except Exception as exc:  # a full disk or a device that cannot export: the run goes on uncached
            warn(f"the compiled model was not kept in {self.folder}: {str(exc).strip().splitlines()[0][:200]}")
        return compiled


def _read_own_file(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a plain file (never through a link); None when absent or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)
