"""A photo's width and height read from its header, before anything is decoded: a server refuses a
photo above its pixel limit without spending the memory (a 12000×12000 PNG decodes to 432 MB of
BGR). PNG, JPEG, BMP, GIF and WebP (lossy, lossless, extended); None for anything else (TIFF, or
bytes that are no image), which the decoder then judges."""

from __future__ import annotations

import struct

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic …): C0–CF but C4, C8, CC
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# a photo above this many pixels is refused before decoding where a limit applies (the served pipeline)
DEFAULT_MAX_PHOTO_PIXELS = 100_000_000  # 100 MP: a 12000×8000 photo passes, 12000×12000 (144 MP) does not


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in JPEG_SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of encoded ``data``, or None where the format is not read here."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:4] in (b"GIF8",) and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def pixel_limit_problem(data: bytes, max_pixels: int) -> str | None:
    """Why ``data`` is refused under ``max_pixels`` (its header says it is larger), or None."""
    size = image_dimensions(data)
    if size is None or size[0] * size[1] <= max_pixels:
        return None
    width, height = size
    return (
        f"is {width}x{height} ({width * height / 1e6:.0f} MP), above this server's limit of "
        f"{max_pixels / 1e6:g} MP: send it smaller, or serve with a larger --max-photo-pixels"
    )
