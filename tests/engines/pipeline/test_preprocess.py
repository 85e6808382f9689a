from pathlib import Path

import cv2
import numpy as np
import pytest

from facebatch.configs.scrfd import SCRFD_NORMALIZE
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.image_header import DEFAULT_MAX_PHOTO_PIXELS, checked_header
from facebatch.engines.pipeline.preprocess import (
    blob_from_images,
    decode_for_detector,
    decode_within,
    jpeg_reduction,
    letterbox,
    letterboxed_blob,
    load_image,
    noise_image,
    on_reduced_image,
    proof_frames,
)


def test_letterbox_is_top_left_and_keeps_ratio():
    image = np.full((100, 200, 3), 255, dtype=np.uint8)  # wide
    canvas, scale = letterbox(image, 320, 320)
    assert canvas.shape == (320, 320, 3) and scale == pytest.approx(1.6)
    assert canvas[:160].min() == 255 and canvas[160:].max() == 0  # image on top, black padding below
    tall = np.full((300, 100, 3), 9, dtype=np.uint8)
    canvas, scale = letterbox(tall, 320, 320)
    assert canvas[:, :106].min() == 9 and canvas[:, 107:].max() == 0


def test_proof_frames_are_distinct(photos):
    frames = proof_frames(6, 64, 64, SCRFD_NORMALIZE, photos[:2])
    assert frames.shape == (6, 3, 64, 64) and frames.dtype == np.float32
    for i in range(6):
        for j in range(i + 1, 6):
            assert not np.array_equal(frames[i], frames[j])
    np.testing.assert_array_equal(noise_image(32, 32, 4), noise_image(32, 32, 4))


def test_unreadable_images_are_clear_errors(tmp_path: Path):
    with pytest.raises(SpecError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(SpecError, match="its size cannot be read from its header"):  # refused, never decoded
        load_image(bad)
    cut = tmp_path / "cut.jpg"
    ok, jpeg = cv2.imencode(".jpg", noise_image(64, 64, 0))
    cut.write_bytes(jpeg.tobytes()[: len(jpeg) // 2])  # a whole header, half the data
    with pytest.raises(SpecError, match="cannot be decoded"):
        load_image(cut)


def test_jpeg_reduction_keeps_the_decode_at_least_as_large_as_the_letterbox():
    assert jpeg_reduction(640, 480, (640, 640)) == 1  # already smaller than the detector
    assert jpeg_reduction(1280, 960, (640, 640)) == 2
    assert jpeg_reduction(1279, 960, (640, 640)) == 1  # 1/2 would be under 640 wide
    assert jpeg_reduction(4000, 3000, (640, 640)) == 4  # 1000×750, then letterboxed to 640×480
    assert jpeg_reduction(6000, 4000, (640, 640)) == 8
    assert jpeg_reduction(20_000, 200, (640, 640)) == 8  # 2500×25 is still larger than its 640×6 letterbox
    # either orientation: a 4000×3000 photo that EXIF turns upright is 3000×4000
    assert jpeg_reduction(3000, 4000, (640, 640)) == jpeg_reduction(4000, 3000, (640, 640))


def _large_jpeg(photos: list[Path], folder: Path, name: str = "obama_1.jpg", long_side: int = 2600) -> Path:
    image = load_image(next(p for p in photos if p.name == name))
    factor = long_side / max(image.shape[:2])
    big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    path = folder / f"large_{Path(name).stem}.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def test_decode_for_detector_reduces_large_jpegs_and_knows_their_size(photos: list[Path], tmp_path: Path):
    path = _large_jpeg(photos, tmp_path)
    whole = load_image(path)
    reduced = decode_for_detector(path, (640, 640))
    assert reduced.reduction == pytest.approx(4, rel=0.01) and reduced.full_size == whole.shape[:2]
    assert reduced.encoded is not None and reduced.image.shape[0] == -(-whole.shape[0] // 4)
    # libjpeg's 1/4 decode is close to an area resize of the full decode (measured: 2.3 grey levels mean)
    area = cv2.resize(whole, reduced.image.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(area.astype(int) - reduced.image).mean() < 3.0
    plain = decode_for_detector(path, None)
    assert plain.reduction == 1.0 and plain.encoded is None and np.array_equal(plain.image, whole)
    small = next(p for p in photos if p.suffix == ".png")
    assert decode_for_detector(small, (640, 640)).reduction == 1.0  # only JPEGs decode reduced


def test_decode_for_detector_turns_exif_rotated_photos_and_refuses_truncated_ones(photos: list[Path], tmp_path: Path):
    from PIL import Image

    path = _large_jpeg(photos, tmp_path)
    upright = load_image(path)
    exif = Image.Image.getexif(Image.new("RGB", (1, 1)))
    exif[0x0112] = 6  # stored sideways: a viewer turns it 90° clockwise
    turned = tmp_path / "turned.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright[..., ::-1], 1))).save(turned, exif=exif, quality=92)
    reduced = decode_for_detector(turned, (640, 640))
    assert reduced.full_size == upright.shape[:2] == load_image(turned).shape[:2] and reduced.reduction > 1
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(SpecError, match="cannot be decoded"):
        decode_for_detector(truncated, (640, 640))


def test_the_resize_into_the_canvas_is_insightfaces_letterbox_to_the_bit(photos: list[Path]):
    for path in photos:
        image = load_image(path)
        ratio = image.shape[0] / image.shape[1]  # insightface's SCRFD.detect, written out
        new_h, new_w = (640, int(640 / ratio)) if ratio > 1 else (int(640 * ratio), 640)
        expected = np.zeros((640, 640, 3), np.uint8)
        expected[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        frame, scale = letterboxed_blob(image, 640, 640, SCRFD_NORMALIZE)
        assert scale == new_h / image.shape[0]
        np.testing.assert_array_equal(letterbox(image, 640, 640)[0], expected, err_msg=path.name)
        np.testing.assert_array_equal(frame, blob_from_images([expected], SCRFD_NORMALIZE)[0], err_msg=path.name)


def test_a_reduced_decodes_pixel_stands_at_the_centre_of_the_photo_pixels_it_averages(photos: list[Path], tmp_path):
    matrices = np.array([[[0.5, -0.1, 3.0], [0.1, 0.5, -7.0]]])
    for factor in (2, 4, 8):
        moved = on_reduced_image(matrices, factor)
        reduced_pixel = np.array([13.0, 21.0, 1.0])
        photo_pixel = np.array([*(factor * reduced_pixel[:2] + (factor - 1) / 2), 1.0])
        np.testing.assert_allclose(moved[0] @ reduced_pixel, matrices[0] @ photo_pixel)
    # on a real photo: a crop warped from the 1/4 decode lies on the whole decode's crop (the naive k·r misses by
    # 1.5 photo px, and the crops differ more)
    image = cv2.imread(str(next(p for p in photos if p.name == "obama_1.jpg")))
    large = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    data = np.frombuffer(cv2.imencode(".jpg", large, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), np.uint8)
    header = checked_header(data, DEFAULT_MAX_PHOTO_PIXELS)
    whole, quarter = decode_within(data, header, 1), decode_within(data, header, 4)
    crop = np.array([[[0.25, 0.0, -800.0], [0.0, 0.25, -500.0]]])  # a 1:4 crop of the face region
    reference = cv2.warpAffine(whole, crop[0], (200, 200)).astype(np.float32)
    centred = cv2.warpAffine(quarter, on_reduced_image(crop, 4)[0], (200, 200)).astype(np.float32)
    naive = crop.copy()
    naive[:, :, :2] *= 4
    cornered = cv2.warpAffine(quarter, naive[0], (200, 200)).astype(np.float32)
    assert np.abs(centred - reference).mean() < 0.8 * np.abs(cornered - reference).mean()


# -- photos fail closed: refused from the header, before decoding ---------------------------------------------------
BOMBS_CHEAP_TO_DECODE = ("jpeg2000.jpg", "avif.jpg", "tiles.tif", "pnm.png", "radiance.jpg", "core.bmp", "zero.png")


def test_a_bomb_is_refused_before_decoding_by_every_reader(tmp_path: Path):
    from tests.engines.pipeline.bombs import write_bombs

    # the ones first that today's readers decode at small cost (the JPEG 2000 to 64 MP, 192 MB), then the rest
    paths = write_bombs(tmp_path / "cheap", BOMBS_CHEAP_TO_DECODE) + write_bombs(tmp_path / "all")
    for path in paths:
        for read in (load_image, lambda p: decode_for_detector(p, None), lambda p: decode_for_detector(p, (640, 640))):
            with pytest.raises(SpecError) as refused:
                read(path)
            message = str(refused.value)
            assert message.startswith(f"image {str(path)!r} "), message
            assert (
                "above the limit of 100 MP; shrink it, or pass a larger max_photo_pixels" in message
                or "a format facebatch does not decode" in message
                or "its size cannot be read from its header" in message
                or "is not a whole image" in message
            ), message
    with pytest.raises(SpecError, match="is JPEG 2000, a format facebatch does not decode"):
        load_image(tmp_path / "cheap" / "jpeg2000.jpg")
    with pytest.raises(SpecError, match=r"is 30000x30000 \(900 MP\), above the limit of 100 MP") as refused:
        decode_for_detector(tmp_path / "all" / "junk_frame.jpg", (640, 640))
    assert refused.value.field == "max_photo_pixels"  # the command line names its flag


def test_the_pixel_limit_is_a_parameter_and_a_normal_photo_passes(photos: list[Path]):
    photo = next(p for p in photos if p.name == "rob_lowe_1.jpg")  # 250x250
    assert load_image(photo, max_pixels=250 * 250).shape[:2] == (250, 250)
    assert decode_for_detector(photo, (640, 640), max_pixels=250 * 250).full_size == (250, 250)
    with pytest.raises(SpecError, match=r"is 250x250 \(0.0625 MP\), above the limit of 0.04 MP"):
        load_image(photo, max_pixels=200 * 200)
    with pytest.raises(SpecError, match="above the limit"):
        proof_frames(2, 64, 64, SCRFD_NORMALIZE, [photo], max_pixels=1000)


def test_a_decode_larger_than_its_header_is_refused(photos: list[Path]):
    from facebatch.engines.pipeline.image_header import PhotoHeader, PhotoRefused
    from facebatch.engines.pipeline.preprocess import decode_within

    data = np.fromfile(next(p for p in photos if p.name == "rob_lowe_1.jpg"), np.uint8)
    assert decode_within(data, PhotoHeader("JPEG", 250, 250)).shape[:2] == (250, 250)
    assert decode_within(data, PhotoHeader("JPEG", 250, 250), factor=2).shape[:2] == (125, 125)
    with pytest.raises(PhotoRefused, match="decoded to 250x250, larger than the 100x250 its header gives"):
        decode_within(data, PhotoHeader("JPEG", 100, 250))


def test_a_file_larger_than_its_pixels_can_need_is_refused_unread(photos: list[Path], tmp_path: Path):
    """A 250x250 JPEG grown to 1.5 GB (sparse: no disk spent): before, the whole file was read into memory
    (RSS +1506 MiB) before its header was looked at; now it is refused from its first MB, in one line."""
    import os
    import subprocess
    import sys

    photo = photos[0].parent / "rob_lowe_1.jpg"
    bloated = tmp_path / "bloated.jpg"
    bloated.write_bytes(photo.read_bytes())
    os.truncate(bloated, 1500 * 2**20)
    probe = (
        "import sys\n"
        "from facebatch.engines.pipeline.preprocess import load_image\n"
        "try:\n    load_image(sys.argv[1])\n    print('decoded')\nexcept Exception as exc:\n    print(exc)\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) high-water mark across exec
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n"
    )

    def peak_of(path: Path) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True)
        message, peak_mib = out.stdout.strip().splitlines()
        return message, int(peak_mib)

    decoded, baseline = peak_of(photo)  # the same interpreter, numpy and OpenCV, reading the photo itself (~90 MiB)
    assert decoded == "decoded"
    message, peak = peak_of(bloated)
    assert "is 1500 MiB on disk, more than a 250x250 JPEG can need (65 MiB)" in message
    # reading the whole file would add 1500 MiB; the refusal reads its first MB: 64 MiB is room for the allocator
    assert peak < baseline + 64, f"peak RSS {peak} MiB, {baseline} MiB reading the photo itself"
