"""A photo's size from its header, fail closed: each accepted format read from real files OpenCV writes
(and decodes to the same size), the JPEG frame header found past junk, fill bytes, restart markers
and long EXIF/ICC segments, truncated headers and formats facebatch does not take refused by name,
the bombs refused, and OpenCV's own cap set before cv2 loads."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facebatch.engines.pipeline.image_header import (
    DEFAULT_MAX_PHOTO_PIXELS,
    OPENCV_PIXEL_CAP_VARIABLE,
    PhotoRefused,
    checked_header,
    photo_header,
)
from tests.conftest import PROJECT
from tests.engines.pipeline.bombs import (
    JUNK_SIDE,
    bombs,
    encoded,
    gif_with_screen,
    jpeg_segment,
    os2_bmp,
    refused_formats,
    small_photo,
    tiff_bytes,
    with_frame_size,
    with_junk_after_app0,
)

HEIGHT, WIDTH = 37, 53
REAL_FILES = {
    "JPEG baseline": (".jpg", 3, ()),
    "JPEG progressive": (".jpg", 3, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    "JPEG gray": (".jpg", 1, ()),
    "PNG": (".png", 3, ()),
    "PNG with alpha": (".png", 4, ()),
    "BMP": (".bmp", 3, ()),
    "GIF": (".gif", 3, ()),
    "WebP lossy (VP8)": (".webp", 3, (cv2.IMWRITE_WEBP_QUALITY, 80)),
    "WebP lossless (VP8L)": (".webp", 3, (cv2.IMWRITE_WEBP_QUALITY, 101)),
    "WebP with alpha (VP8X)": (".webp", 4, (cv2.IMWRITE_WEBP_QUALITY, 80)),
    "TIFF": (".tif", 3, ()),
    "TIFF deflate": (".tif", 3, (cv2.IMWRITE_TIFF_COMPRESSION, 8)),
}


def decoded_size(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[1], image.shape[0]


@pytest.mark.parametrize("case", list(REAL_FILES))
def test_each_accepted_format_gives_the_size_opencv_decodes(case: str):
    extension, channels, params = REAL_FILES[case]
    data = encoded(extension, small_photo(HEIGHT, WIDTH, channels), params)
    header = photo_header(data)
    assert (header.width, header.height) == (WIDTH, HEIGHT) == decoded_size(data), case
    assert header.format == case.split()[0]
    # the same from the array read_bytes gives
    assert photo_header(np.frombuffer(data, np.uint8)) == header


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("kind", [3, 4])
def test_tiff_ifd0_in_both_byte_orders_short_and_long(order: str, kind: int):
    data = tiff_bytes(order, kind, 23, 17)
    header = photo_header(data)
    assert (header.format, header.width, header.height) == ("TIFF", 23, 17)
    assert decoded_size(data) == (23, 17)  # what OpenCV (libtiff) decodes from the same file


def test_a_multi_page_tiff_is_sized_by_the_page_imdecode_decodes(tmp_path):
    small, large = small_photo(30, 40), small_photo(300, 400, seed=1)
    for pages in ([small, large], [large, small]):
        path = tmp_path / "pages.tif"
        assert cv2.imwritemulti(str(path), pages)
        data = path.read_bytes()
        header = photo_header(data)
        assert (header.height, header.width) == pages[0].shape[:2]  # IFD0; later pages are never decoded
        assert decoded_size(data) == (header.width, header.height)


def test_a_tiff_with_tiles_larger_than_its_image_is_refused():
    with pytest.raises(PhotoRefused, match=r"TIFF tiles \(8192x8192\) are larger than the image \(64x64\)"):
        photo_header(tiff_bytes("<", 4, 64, 64, tile=(8192, 8192)))
    assert photo_header(tiff_bytes("<", 4, 64, 64, tile=(64, 64))).pixels == 64 * 64


def test_bmp_os2_core_header_and_top_down_rows():
    core = os2_bmp(5, 3)
    assert (photo_header(core).width, photo_header(core).height) == (5, 3) == decoded_size(core)
    top_down = bytearray(encoded(".bmp", small_photo(HEIGHT, WIDTH)))
    top_down[22:26] = (-HEIGHT).to_bytes(4, "little", signed=True)
    assert (photo_header(top_down).width, photo_header(top_down).height) == (WIDTH, HEIGHT) == decoded_size(top_down)


def test_the_jpeg_frame_header_is_found_where_libjpeg_finds_it():
    jpeg = encoded(".jpg", small_photo(HEIGHT, WIDTH))
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    icc = b"".join(jpeg_segment(0xE2, b"ICC_PROFILE\0" + bytes(65000)) for _ in range(5))  # 325 KB before the frame
    odd = (
        jpeg[:app0_end]
        + b"junk between segments"
        + b"\xff\x00"  # a stuffed zero: junk to libjpeg
        + b"\xff\xff\xff"  # fill bytes before a marker
        + b"\xff\xd3"  # a restart marker, parameterless
        + icc
        + jpeg[app0_end:]
    )
    assert len(odd) > 262144 and decoded_size(odd) == (WIDTH, HEIGHT)  # libjpeg takes it (with a warning)
    assert (photo_header(odd).width, photo_header(odd).height) == (WIDTH, HEIGHT)
    # the junk-JPEG bomb: junk before the frame that says 30000x30000 (today's reader stopped at the junk)
    bomb = with_junk_after_app0(with_frame_size(jpeg, JUNK_SIDE, JUNK_SIDE))
    assert (photo_header(bomb).width, photo_header(bomb).height) == (JUNK_SIDE, JUNK_SIDE)
    with pytest.raises(PhotoRefused, match=r"is 30000x30000 \(900 MP\), above this server's limit of 100 MP"):
        checked_header(bomb, DEFAULT_MAX_PHOTO_PIXELS, "this server's")  # as the served model checks it


@pytest.mark.parametrize(
    ("case", "cut"),
    [
        ("JPEG baseline", "before its frame header"),
        ("PNG", 20),
        ("BMP", 20),
        ("GIF", 8),
        ("WebP lossy (VP8)", 24),
        ("TIFF", 8),
    ],
)
def test_a_truncated_header_is_refused(case: str, cut):
    extension, channels, params = REAL_FILES[case]
    data = encoded(extension, small_photo(HEIGHT, WIDTH, channels), params)
    if cut == "before its frame header":
        cut = data.index(b"\xff\xc0") + 4
    with pytest.raises(PhotoRefused, match="its size cannot be read from its header"):
        photo_header(data[:cut])


def test_no_header_or_no_pixels_is_refused():
    for data in (b"", b"not an image at all", b"\xff\xd8\xff\xd9", b"\xff\xd8\xff\xda\x00\x08" + bytes(10)):
        with pytest.raises(PhotoRefused, match=r"not a JPEG, PNG, BMP, GIF, WebP or TIFF|gives no size"):
            photo_header(data)
    zero = bytearray(encoded(".png", small_photo()))
    zero[16:24] = bytes(8)
    with pytest.raises(PhotoRefused, match="gives a size of 0x0"):
        photo_header(zero)


def test_formats_opencv_decodes_that_facebatch_does_not_take_are_refused_by_name():
    for name, data in refused_formats().items():
        if name not in ("OpenEXR", "BigTIFF"):  # real files: OpenCV would decode each
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None, name
        with pytest.raises(PhotoRefused) as refused:
            photo_header(data)
        named = {"PGM": "PNM", "PBM": "PNM"}.get(name, name)
        assert f"is {named}" in str(refused.value) and "a format facebatch does not decode" in str(refused.value)


def test_every_bomb_is_refused_from_its_header():
    for name, data in bombs().items():
        assert len(data) < 2_000_000, name
        with pytest.raises(PhotoRefused) as refused:  # the served reader let most of them through before
            checked_header(data, DEFAULT_MAX_PHOTO_PIXELS, "this server's")
        assert str(refused.value).startswith(("is ", "is not a whole image")), f"{name}: {refused.value}"
    screen = photo_header(gif_with_screen(12000, 12000))
    assert (screen.format, screen.pixels) == ("GIF", 144_000_000)
    with pytest.raises(PhotoRefused, match=r"is 12000x12000 \(144 MP\), above the limit of 100 MP") as refused:
        checked_header(gif_with_screen(12000, 12000), DEFAULT_MAX_PHOTO_PIXELS)
    assert refused.value.too_large


PROBE = """
import os, sys
import numpy as np
{first}
print(os.environ.get({variable!r}))
refused = []
for path in sys.argv[1:]:
    try:
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    refused.append(image is None)
print(all(refused), sum(refused))
"""


def _probe(first: str, files: list[str], env: dict[str, str]) -> list[str]:
    code = PROBE.format(first=first, variable=OPENCV_PIXEL_CAP_VARIABLE)
    done = subprocess.run(
        [sys.executable, "-c", code, *files], capture_output=True, text=True, cwd=PROJECT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_opencv_cap_is_set_before_cv2_loads_and_every_codec_honours_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != OPENCV_PIXEL_CAP_VARIABLE}
    huge = tmp_path / "huge.png"
    huge.write_bytes(bombs()["huge.png"])  # 144 MP, a valid PNG
    # facebatch first: its import sets the cap to the default limit, and OpenCV refuses the 144 MP PNG itself
    assert _probe("import facebatch, cv2", [str(huge)], env) == [str(DEFAULT_MAX_PHOTO_PIXELS), "True", "1"]
    # a cap the environment already gives is kept; every codec OpenCV has here honours it (each file is 53x37)
    small = []
    for extension, channels, params in REAL_FILES.values():
        small.append(tmp_path / f"{len(small)}{extension}")
        small[-1].write_bytes(encoded(extension, small_photo(HEIGHT, WIDTH, channels), params))
    for name, data in refused_formats().items():
        if name not in ("OpenEXR", "BigTIFF"):
            small.append(tmp_path / f"{len(small)}.bin")
            small[-1].write_bytes(data)
    capped = _probe("import facebatch, cv2", list(map(str, small)), {**env, OPENCV_PIXEL_CAP_VARIABLE: "1000"})
    assert capped == ["1000", "True", str(len(small))]
    # cv2 loaded before facebatch: too late to set, so facebatch leaves the environment alone
    assert _probe("import cv2, facebatch", [str(huge)], env) == ["None", "False", "0"]
