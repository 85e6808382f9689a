"""A photo's format, width and height read from its header, before anything is decoded: fail closed.

A photo is decoded only when its header gives a size in a format facebatch accepts (JPEG, PNG, BMP,
GIF, WebP, TIFF) and that size is within the pixel limit; anything else is refused in one line
without decoding (``PhotoRefused``). Each reader follows what OpenCV's own decoder allocates from:

* JPEG: the first frame header (SOF) found walking the segments as libjpeg does: anything before a
  marker's 0xFF is skipped (junk, stuffed FF 00), fill bytes and parameterless markers (RST, TEM)
  too; APPn (EXIF, its thumbnail, ICC) and the other table segments are skipped by their lengths,
  however far into the file the frame header sits. A scan or an end before any frame, a marker
  libjpeg refuses or a length that runs out: refused.
* PNG: IHDR (the first chunk); an APNG's frames must fit inside it.
* BMP: BITMAPINFOHEADER and later (32-bit sizes; a negative height is top-down), OS/2's
  BITMAPCOREHEADER (16-bit sizes).
* GIF: the logical screen. OpenCV's decoder allocates its canvas at that size (4 bytes a pixel) and
  asserts that every image descriptor fits inside it, so the screen bounds every frame.
* WebP: VP8 (lossy), VP8L (lossless), VP8X (extended: the canvas, which libwebp holds the image to).
* TIFF: IFD0's ImageWidth and ImageLength (SHORT or LONG, either byte order), which is the page
  ``imdecode`` decodes (later pages and sub-IFDs are never read); tiles larger than the image are
  refused, since OpenCV sizes its tile buffer from them. BigTIFF is refused.

Everything else is refused, by name where it is a format OpenCV could decode (JPEG 2000, AVIF/HEIF,
Radiance HDR, PNM, PFM, Sun raster, OpenEXR, JPEG XL): their decoders cannot be bounded from a
header read here. OpenCV's own cap (``OPENCV_IO_MAX_IMAGE_PIXELS``, read once when cv2 loads) is set
to the same default as a backstop by ``cap_opencv_decodes``, which ``import facebatch`` calls.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facebatch.core.errors import SpecError

if TYPE_CHECKING:  # kept light (no numpy): 'import facebatch' calls cap_opencv_decodes from here
    import numpy as np

    Encoded = bytes | bytearray | memoryview | np.ndarray  # an array: C-contiguous uint8

# a photo above this many pixels is refused before decoding (local commands and the served pipeline)
DEFAULT_MAX_PHOTO_PIXELS = 100_000_000  # 100 MP: a 12000×8000 photo passes, 12000×12000 (144 MP) does not
# the decoded pixels one merged batch of the served pipeline may hold at once, as photos at the limit: 4 × 100 MP of
# BGR is 1.2 GB, where 32 photos of 100 MP (the batcher's largest merge) were 9.6 GB
BATCH_PIXELS_IN_PHOTO_LIMITS = 4
# OpenCV's own cap on one decode (its default 2^30 pixels), read from the environment once, when cv2 loads:
# measured on OpenCV 5.1, set before 'import cv2' every codec (JPEG, PNG, BMP, WebP, TIFF, GIF, JPEG 2000, AVIF,
# HDR, PNM, PFM, Sun raster) refuses a larger image by raising cv2.error; set after, it is ignored
OPENCV_PIXEL_CAP_VARIABLE = "OPENCV_IO_MAX_IMAGE_PIXELS"
OPENCV_DEFAULT_PIXEL_CAP = 1 << 30
ACCEPTED = "JPEG, PNG, BMP, GIF, WebP or TIFF"
# A photo file is read in two steps: its header from the first HEADER_WINDOW_BYTES (a frame header after more
# metadata than that is refused: no size found), then the rest only when the file is no larger than its pixels
# can need: MAX_BYTES_PER_PIXEL (16-bit RGBA stored raw, as TIFF and BMP may, is 8; PNG's filter byte and
# failed compression add little) plus METADATA_BYTES (EXIF, ICC, XMP and embedded previews: a few MB on
# cameras). A 250x250 header on a 1.5 GB (sparse) file is refused unread; before, it took 1.5 GB of memory.
HEADER_WINDOW_BYTES = 64 * 2**20
MAX_BYTES_PER_PIXEL = 16
METADATA_BYTES = 64 * 2**20

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic …): C0–CF but C4, C8, CC
JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# segments libjpeg skips or reads by their length before the frame: DHT, DAC, DQT, DNL, DRI, APP0–15, COM
JPEG_SEGMENTS = frozenset({0xC4, 0xCC, 0xDB, 0xDC, 0xDD, *range(0xE0, 0xF0), 0xFE})
JPEG_PARAMETERLESS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0–7
_FF = re.compile(b"\xff")

TIFF_WIDTH, TIFF_LENGTH, TIFF_TILE_WIDTH, TIFF_TILE_LENGTH = 256, 257, 322, 323
TIFF_SHORT, TIFF_LONG = 3, 4

# formats OpenCV decodes that are refused by name: (leading bytes, name)
REFUSED_FORMATS = (
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"II\x2b\x00", "BigTIFF"),
    (b"MM\x00\x2b", "BigTIFF"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"PF", "PFM"),
    (b"Pf", "PFM"),
)


class PhotoRefused(SpecError):
    """A photo refused from its header, before decoding. The message is a clause about the photo
    ("is JPEG 2000, …"); the caller names the photo in front of it and says what to change after it."""

    def __init__(self, reason: str, too_large: bool = False, no_size: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large  # a size above the limit (else: no size, or a format not accepted)
        self.no_size = no_size  # the header gave no size: more of the file may hold it


@dataclass(frozen=True)
class PhotoHeader:
    """What a photo's header says: its format and its stored size (before any EXIF turn)."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def holds(self, decoded_hw: tuple[int, int], factor: int = 1) -> bool:
        """Whether a decode of ``decoded_hw`` (height, width) at 1/``factor`` is no larger than this
        header allows, either way round (EXIF orientation may turn it)."""
        height, width = -(-self.height // factor), -(-self.width // factor)
        h, w = decoded_hw
        return (h <= height and w <= width) or (h <= width and w <= height)


def _jpeg(view: memoryview) -> tuple[int, int] | None:
    """(width, height) of the first frame header libjpeg would read, or None where it reads none."""
    size, at = len(view), 2  # after SOI
    while True:
        found = _FF.search(view, at)  # libjpeg skips any bytes before a marker (a warning, not an error)
        if found is None:
            return None
        at = found.start()
        while at < size and view[at] == 0xFF:  # the marker's FF and any fill bytes before it
            at += 1
        if at >= size:
            return None
        marker = view[at]
        at += 1
        if marker == 0x00 or marker in JPEG_PARAMETERLESS:  # FF 00 is stuffed data, skipped as junk
            continue
        if marker not in JPEG_SOF and marker not in JPEG_SEGMENTS:  # SOS or EOI before a frame, SOI again, unknown
            return None
        if at + 2 > size:
            return None
        (length,) = struct.unpack_from(">H", view, at)
        if length < 2:
            return None
        if marker in JPEG_SOF:
            if length < 8 or at + 7 > size:
                return None
            height, width = struct.unpack_from(">HH", view, at + 3)
            return width, height
        at += length


def _png(view: memoryview) -> tuple[int, int] | None:
    if len(view) < 24 or bytes(view[12:16]) != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", view, 16)
    return width, height


def _bmp(view: memoryview) -> tuple[int, int] | None:
    if len(view) < 18:
        return None
    (header_size,) = struct.unpack_from("<I", view, 14)
    if header_size == 12 and len(view) >= 22:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack_from("<HH", view, 18)
    if 36 <= header_size < 1 << 31 and len(view) >= 26:  # BITMAPINFOHEADER and later (what OpenCV reads)
        width, height = struct.unpack_from("<ii", view, 18)
        return abs(width), abs(height)  # a negative height is a top-down bitmap
    return None


def _gif(view: memoryview) -> tuple[int, int] | None:
    if bytes(view[:6]) not in (b"GIF87a", b"GIF89a") or len(view) < 10:
        return None
    return struct.unpack_from("<HH", view, 6)


def _webp(view: memoryview) -> tuple[int, int] | None:
    chunk = bytes(view[12:16])
    if chunk == b"VP8 " and len(view) >= 30 and bytes(view[23:26]) == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", view, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(view) >= 25 and view[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", view, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(view) >= 30:
        width = int.from_bytes(view[24:27], "little") + 1
        height = int.from_bytes(view[27:30], "little") + 1
        return width, height
    return None


def _tiff(view: memoryview) -> tuple[int, int] | None:
    """IFD0's ImageWidth × ImageLength (what libtiff opens and OpenCV decodes); refused where a field
    is missing, repeated, not one SHORT or LONG, or the tiles are larger than the image."""
    order = "<" if bytes(view[:2]) == b"II" else ">"
    if len(view) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", view, 4)
    if ifd < 8 or ifd + 2 > len(view):
        return None
    (count,) = struct.unpack_from(order + "H", view, ifd)
    if ifd + 2 + 12 * count > len(view):
        return None
    fields: dict[int, int] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", view, entry)
        if tag not in (TIFF_WIDTH, TIFF_LENGTH, TIFF_TILE_WIDTH, TIFF_TILE_LENGTH):
            continue
        if tag in fields or values != 1 or kind not in (TIFF_SHORT, TIFF_LONG):
            return None
        (fields[tag],) = struct.unpack_from(order + ("H" if kind == TIFF_SHORT else "I"), view, entry + 8)
    if TIFF_WIDTH not in fields or TIFF_LENGTH not in fields:
        return None
    width, height = fields[TIFF_WIDTH], fields[TIFF_LENGTH]
    tiled = TIFF_TILE_WIDTH in fields or TIFF_TILE_LENGTH in fields
    if tiled:
        tile = fields.get(TIFF_TILE_WIDTH, 0), fields.get(TIFF_TILE_LENGTH, 0)
        if not all(0 < side <= max(16, -(-full // 16) * 16) for side, full in zip(tile, (width, height), strict=True)):
            raise PhotoRefused(
                f"is not a whole image: its TIFF tiles ({tile[0]}x{tile[1]}) are larger than the image ({width}x{height})"
            )
    return width, height


def _refused_format(view: memoryview) -> str | None:
    """The name of a format OpenCV could decode that facebatch refuses, from its leading bytes."""
    head = bytes(view[:16])
    for signature, name in REFUSED_FORMATS:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp":
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF (an ISO media file)"
    if len(head) >= 3 and head[0] == ord("P") and head[1] in b"1234567" and head[2] in b" \t\r\n#":
        return "PNM (PBM, PGM, PPM or PAM)"
    return None


def photo_header(data: Encoded) -> PhotoHeader:
    """The format and size ``data``'s header gives; ``PhotoRefused`` where it gives none, in a
    format facebatch accepts, or gives 0 pixels. Reads the whole of ``data`` when it has to (a JPEG's
    frame header may follow long EXIF, thumbnail and ICC segments), never decodes."""
    view = memoryview(data).cast("B")
    head = bytes(view[:12])
    size, name = None, None
    if head[:3] == b"\xff\xd8\xff":  # OpenCV's JPEG signature
        name, size = "JPEG", _jpeg(view)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        name, size = "PNG", _png(view)
    elif head[:2] == b"BM":
        name, size = "BMP", _bmp(view)
    elif head[:4] == b"GIF8":
        name, size = "GIF", _gif(view)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        name, size = "WebP", _webp(view)
    elif head[:4] in (b"II\x2a\x00", b"MM\x00\x2a"):
        name, size = "TIFF", _tiff(view)
    elif (refused := _refused_format(view)) is not None:
        raise PhotoRefused(f"is {refused}, a format facebatch does not decode (it takes {ACCEPTED})")
    if size is None:
        what = f"a {name} header that gives no size" if name else f"not a {ACCEPTED}"
        raise PhotoRefused(f"is not a whole image: its size cannot be read from its header ({what})", no_size=True)
    width, height = size
    if width <= 0 or height <= 0:
        raise PhotoRefused(f"is not a whole image: its {name} header gives a size of {width}x{height}")
    return PhotoHeader(name, width, height)


def batch_pixel_budget(max_photo_pixels: int, given: int | None = None) -> int:
    """What the served pipeline decodes of one merged batch at once: ``given``, or
    ``BATCH_PIXELS_IN_PHOTO_LIMITS`` photos at the limit."""
    return given if given is not None else BATCH_PIXELS_IN_PHOTO_LIMITS * max_photo_pixels


def megapixels(pixels: int) -> str:
    """Pixels in MP as people write them: 900, 144, 1.13, 0.0625."""
    value = pixels / 1e6
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def over_limit(header: PhotoHeader, max_pixels: int, whose: str = "the") -> PhotoRefused | None:
    """The refusal of a photo whose header says it is above ``max_pixels``, or None."""
    if header.pixels <= max_pixels:
        return None
    return PhotoRefused(
        f"is {header.width}x{header.height} ({megapixels(header.pixels)} MP), above {whose} limit of "
        f"{megapixels(max_pixels)} MP",
        too_large=True,
    )


def checked_header(data: Encoded, max_pixels: int, whose: str = "the") -> PhotoHeader:
    """``photo_header``, refused as well when above ``max_pixels`` (``whose`` limit it is, for the message)."""
    header = photo_header(data)
    refusal = over_limit(header, max_pixels, whose)
    if refusal is not None:
        raise refusal
    return header


def file_size_problem(header: PhotoHeader, size: int) -> PhotoRefused | None:
    """The refusal of a photo file larger than its pixels can need (``MAX_BYTES_PER_PIXEL`` each, plus
    ``METADATA_BYTES``), before the rest of it is read; None for one within that."""
    limit = MAX_BYTES_PER_PIXEL * header.pixels + METADATA_BYTES
    if size <= limit:
        return None
    return PhotoRefused(
        f"is not a whole image: it is {size / 2**20:.0f} MiB on disk, more than a {header.width}x{header.height} "
        f"{header.format} can need ({limit / 2**20:.0f} MiB)"
    )


def what_to_change(refusal: PhotoRefused, served: bool) -> str:
    """What the owner of a refused photo can do: a local caller, or a client of the served model (its limit)."""
    larger = "send it smaller, or serve with a larger" if served else "shrink it, or pass a larger"
    if refusal.too_large:
        return f"{larger} max_photo_pixels"
    return f"send {ACCEPTED} bytes" if served else f"pass a whole {ACCEPTED} file"


def opencv_pixel_cap() -> int:
    """OpenCV's own cap on one decode in this process, as the environment gave it when cv2 loaded
    (``cap_opencv_decodes`` sets it before; a value set after cv2 loaded would not count)."""
    try:
        return int(os.environ.get(OPENCV_PIXEL_CAP_VARIABLE, OPENCV_DEFAULT_PIXEL_CAP))
    except ValueError:
        return OPENCV_DEFAULT_PIXEL_CAP


def cap_opencv_decodes() -> None:
    """Set OpenCV's own decode cap to ``DEFAULT_MAX_PHOTO_PIXELS`` unless the environment sets one,
    while cv2 is not loaded yet (it reads the variable once, when it loads): a backstop behind the
    header checks, in this process and the ones it starts (Triton's python stubs, Ray's workers)."""
    if "cv2" not in sys.modules:
        os.environ.setdefault(OPENCV_PIXEL_CAP_VARIABLE, str(DEFAULT_MAX_PHOTO_PIXELS))


def check_limit_against_opencv(max_pixels: int, field: str = "max_photo_pixels") -> None:
    """Refuse a pixel limit (the option named ``field``) that OpenCV's own cap in this process would
    undercut (the photos between them would be refused by OpenCV as undecodable), saying which variable to raise."""
    if max_pixels < 1:
        raise SpecError(f"{field} must be at least 1, got {max_pixels}", field=field)
    cap = opencv_pixel_cap()
    if max_pixels > cap:
        raise SpecError(
            f"{field} {max_pixels} is above OpenCV's own decode cap in this process ({cap}, from "
            f"{OPENCV_PIXEL_CAP_VARIABLE}); start it with {OPENCV_PIXEL_CAP_VARIABLE}={max_pixels} in the environment",
            field=field,
        )
