"""What a file is, by its first bytes: one helper for every input a command reads (weights,
models, photos), so a JPEG passed as a model is called a JPEG wherever it is passed."""

from __future__ import annotations

from pathlib import Path

MAGIC = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image, WAV sound…)",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"PK\x03\x04": "a zip archive (torch.save's format: a PyTorch checkpoint?)",
    b"\x80": "a pickle (a PyTorch checkpoint in torch's legacy format?)",
    b"\x08": "an ONNX model or another protobuf",
}


def file_kind(path: Path) -> str | None:
    """'a JPEG image', 'empty', … for a file whose first bytes say what it is; None when they do not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if not head:
        return "empty"
    return next((what for magic, what in MAGIC.items() if head.startswith(magic)), None)
