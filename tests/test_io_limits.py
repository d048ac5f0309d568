"""Size limits are enforced with one-line reasons, before anything large is decoded."""

import gzip

import numpy as np
import PIL.Image
import pytest

from workbench.errors import InputError
from workbench.io import load_image
from workbench.io.limits import Limits, check_file_size, check_image_size, read_bounded


def test_file_size_limits(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    assert check_file_size(path, Limits(max_file_bytes=100)) == 100
    with pytest.raises(InputError, match="above the"):
        check_file_size(path, Limits(max_file_bytes=99))
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        check_file_size(path)
    with pytest.raises(InputError, match="no such file"):
        check_file_size(tmp_path / "missing.png")
    with pytest.raises(InputError, match="no such file"):
        check_file_size(tmp_path)  # a folder is not a file


def test_gzip_is_unpacked_within_the_limit(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"abc" * 100))
    assert read_bounded(path) == b"abc" * 100
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(bytes(1 << 20)))  # 1 MB of zeros in ~1 kB
    with pytest.raises(InputError, match="unpacks to more than"):
        read_bounded(bomb, Limits(max_file_bytes=64 << 10))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(bytes(range(256)) * 100)[:200])
    with pytest.raises(InputError, match="truncated"):
        read_bounded(cut)


@pytest.mark.parametrize(
    ("rows", "cols", "ok"),
    [(8, 8, True), (7, 100, False), (100, 100, True), (101, 100, False)],
)
def test_image_size_bounds(rows, cols, ok):
    limits = Limits(min_side=8, max_pixels=100 * 100)
    if ok:
        check_image_size(rows, cols, "x.png", limits)
    else:
        with pytest.raises(InputError, match=r"^x\.png: the image is"):
            check_image_size(rows, cols, "x.png", limits)


def test_oversized_picture_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    PIL.Image.fromarray(np.zeros((300, 200), np.uint8)).save(path)
    with pytest.raises(InputError, match="300x200 pixels, above the limit of 10,000"):
        load_image(path, limits=Limits(max_pixels=10_000))


def test_all_frames_respects_the_volume_limit(tmp_path):
    pages = [PIL.Image.fromarray(np.zeros((10, 10), np.uint8)) for _ in range(4)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    limits = Limits(max_volume_voxels=300)
    assert load_image(path, limits=limits).pixels.shape == (10, 10)  # one frame fits
    with pytest.raises(InputError, match="4x10x10 = 400 values"):
        load_image(path, all_frames=True, limits=limits)
