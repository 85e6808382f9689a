"""Hostile photos for the pixel-limit tests: tiny files that claim, or really decode to, huge sizes,
made here from real files OpenCV writes (or, where no encoder can write the lie, from the format's
own header laid out by hand). Each bomb's name ends in a suffix the folder walk takes (.jpg, .png,
.tif …) whatever its content: OpenCV picks its decoder from the bytes, not the name."""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import cv2
import numpy as np

JUNK_SIDE = 30000  # the junk-JPEG's real frame: 900 MP, 2.7 GB of BGR (a 5.2 GB peak RSS when OpenCV decodes it)


def encoded(extension: str, image: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, data = cv2.imencode(extension, image, list(params))
    assert ok, extension
    return data.tobytes()


def small_photo(height: int = 37, width: int = 53, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) says ``width``×``height``: libjpeg decodes that size."""
    data = bytearray(jpeg)
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def with_junk_after_app0(jpeg: bytes, junk: bytes = b"junk!") -> bytes:
    """Bytes between two segments: libjpeg warns ("extraneous bytes before marker") and decodes."""
    assert jpeg[2:4] == b"\xff\xe0"
    end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:end] + junk + jpeg[end:]


def junk_jpeg_bomb() -> bytes:
    """694 bytes that decode to 30000×30000 today: a real 64×64 JPEG, junk after APP0, its SOF patched."""
    jpeg = encoded(".jpg", np.full((64, 64, 3), 128, np.uint8))
    return with_junk_after_app0(with_frame_size(jpeg, JUNK_SIDE, JUNK_SIDE))


def tiff_bytes(order: str, kind: int, width: int, height: int, tile: tuple[int, int] | None = None) -> bytes:
    """A minimal uncompressed 8-bit gray TIFF, laid out by hand: byte ``order`` "<" (II) or ">" (MM),
    ImageWidth and ImageLength of TIFF ``kind`` 3 (SHORT) or 4 (LONG); one strip, or ``tile`` tags
    (a tiled file's header only)."""
    pixels = bytes((x * 7 + y * 3) % 256 for y in range(height) for x in range(width))
    size_format = "H" if kind == 3 else "I"
    entries = [
        (256, kind, 1, struct.pack(order + size_format, width).ljust(4, b"\0")),
        (257, kind, 1, struct.pack(order + size_format, height).ljust(4, b"\0")),
        (258, 3, 1, struct.pack(order + "H", 8).ljust(4, b"\0")),  # BitsPerSample
        (259, 3, 1, struct.pack(order + "H", 1).ljust(4, b"\0")),  # no compression
        (262, 3, 1, struct.pack(order + "H", 1).ljust(4, b"\0")),  # BlackIsZero
    ]
    count = len(entries) + 4
    data_at = 8 + 2 + 12 * count + 4
    if tile is None:
        entries += [
            (273, 4, 1, struct.pack(order + "I", data_at)),  # StripOffsets
            (277, 3, 1, struct.pack(order + "H", 1).ljust(4, b"\0")),  # SamplesPerPixel
            (278, 4, 1, struct.pack(order + "I", height)),  # RowsPerStrip
            (279, 4, 1, struct.pack(order + "I", len(pixels))),  # StripByteCounts
        ]
    else:
        entries += [
            (277, 3, 1, struct.pack(order + "H", 1).ljust(4, b"\0")),
            (322, 4, 1, struct.pack(order + "I", tile[0])),  # TileWidth
            (323, 4, 1, struct.pack(order + "I", tile[1])),  # TileLength
            (324, 4, 1, struct.pack(order + "I", data_at)),  # TileOffsets
        ]
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    ifd = struct.pack(order + "H", count)
    for tag, field_type, values, value in sorted(entries):
        ifd += struct.pack(order + "HHI", tag, field_type, values) + value
    return head + ifd + struct.pack(order + "I", 0) + pixels


def os2_bmp(width: int, height: int) -> bytes:
    """A 24-bit BMP with OS/2's BITMAPCOREHEADER (12 bytes, 16-bit sizes)."""
    row = (width * 3 + 3) // 4 * 4
    pixels = bytes(row * height)
    return (
        b"BM"
        + struct.pack("<IHHI", 26 + len(pixels), 0, 0, 26)
        + struct.pack("<IHHHH", 12, width, height, 1, 24)
        + pixels
    )


def gif_with_screen(width: int, height: int) -> bytes:
    """A real 53×37 GIF (OpenCV's) whose logical screen says ``width``×``height``: its frame still fits,
    so OpenCV decodes a canvas of the screen's size."""
    data = bytearray(encoded(".gif", small_photo()))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def webp_vp8x(width: int, height: int) -> bytes:
    """The header of an extended WebP whose canvas is ``width``×``height``."""
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    chunk += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def refused_formats() -> dict[str, bytes]:
    """A real file (or header) of each format OpenCV decodes that facebatch refuses by name."""
    image = small_photo()
    return {
        "JPEG 2000": encoded(".jp2", image),
        "AVIF": encoded(".avif", image),
        "Radiance HDR": encoded(".hdr", image.astype(np.float32) / 255),
        "PNM": encoded(".ppm", image),
        "PGM": encoded(".pgm", image[..., 0]),
        "PBM": encoded(".pbm", image[..., 0]),
        "Sun raster": encoded(".ras", image),
        "PFM": encoded(".pfm", image.astype(np.float32) / 255),
        "OpenEXR": b"\x76\x2f\x31\x01\x02\x00\x00\x00" + bytes(64),  # this OpenCV build writes no EXR
        "BigTIFF": b"II\x2b\x00\x08\x00\x00\x00" + bytes(16),
    }


@functools.cache
def bombs() -> dict[str, bytes]:
    """File name → bytes, each under 2 MB, each a photo that is refused before decoding. The first six
    really decode to at least 64 MP with today's OpenCV (the junk-JPEG to 900 MP)."""
    return {
        "junk_frame.jpg": junk_jpeg_bomb(),
        "jpeg2000.jpg": encoded(".jp2", np.zeros((8000, 8000), np.uint8)),  # 64 MP: refused for its format
        "deflate.tif": encoded(".tif", np.zeros((12000, 12000), np.uint8), (cv2.IMWRITE_TIFF_COMPRESSION, 8)),
        "huge.png": encoded(".png", np.zeros((12000, 12000), np.uint8)),
        "screen.png": gif_with_screen(12000, 12000),  # a GIF, named .png: the folder walk takes it
        "avif.jpg": encoded(".avif", np.zeros((2000, 2000, 3), np.uint8)),
        "pnm.png": b"P5\n20000 20000\n255\n" + bytes(64),
        "radiance.jpg": b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n" + bytes(64),
        "sun.bmp": struct.pack(">8I", 0x59A66A95, 20000, 20000, 24, 0, 1, 0, 0) + bytes(64),
        "pfm.tif": b"PF\n20000 20000\n-1.0\n" + bytes(64),
        "core.bmp": os2_bmp(4, 4)[:18] + struct.pack("<HHHH", 65535, 65535, 1, 24) + bytes(64),
        "tiles.tif": tiff_bytes("<", 4, 64, 64, tile=(8192, 8192)),
        "canvas.webp": webp_vp8x(16384, 16384),
        "big_endian.tif": tiff_bytes(">", 4, 20, 20)[:8] + b"\x00" * 4,  # its IFD0 lies past the end
        "zero.png": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(13) + bytes(4),
    }


def write_bombs(folder: Path, names: tuple[str, ...] | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, data in bombs().items():
        if names is None or name in names:
            (folder / name).write_bytes(data)
            made.append(folder / name)
    return made
