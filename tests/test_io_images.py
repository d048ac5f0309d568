"""Picture files (PNG/JPEG/TIFF/WEBP/GIF) through workbench.io.load_image."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from workbench.errors import InputError
from workbench.io import describe, load_image


def save(tmp_path: Path, name: str, arr: np.ndarray, mode: str | None = None, **kw) -> Path:
    path = tmp_path / name
    im = PIL.Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(path, **kw)
    return path


def test_lgg_like_rgb_tif_keeps_its_three_channels(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    image = load_image(save(tmp_path, "TCGA_CS_4941_19960909_1.tif", arr))
    assert image.pixels.dtype == np.float32
    assert image.pixels.shape == (256, 256, 3)
    np.testing.assert_array_equal(image.pixels, arr)
    assert image.modality == "photo"
    assert image.spacing is None
    assert image.source == "TCGA_CS_4941_19960909_1.tif"


def test_16_bit_png_keeps_its_range(tmp_path):
    arr = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    image = load_image(save(tmp_path, "deep.png", arr))
    np.testing.assert_array_equal(image.pixels, arr.astype(np.float32))
    assert image.pixels.max() == 1023 * 60  # above 255: not squashed to 8 bits
    assert image.header["StoredDataType"] == "uint16"


def test_grey_jpeg_is_two_dimensional(tmp_path):
    arr = np.full((20, 30), 100, np.uint8)
    image = load_image(save(tmp_path, "grey.jpg", arr))
    assert image.pixels.shape == (20, 30)
    assert np.allclose(image.pixels, 100, atol=2)  # JPEG is lossy but flat stays flat


def test_rgba_is_composited_on_black(tmp_path):
    arr = np.zeros((16, 16, 4), np.uint8)
    arr[..., 0] = 200
    arr[:8, :, 3] = 255  # top half opaque
    arr[8:, :, 3] = 51  # bottom half 20 % opaque
    pixels = load_image(save(tmp_path, "alpha.png", arr)).pixels
    assert pixels.shape == (16, 16, 3)
    assert pixels[0, 0].tolist() == [200, 0, 0]
    assert pixels[15, 0].tolist() == pytest.approx([40, 0, 0])  # 200 * 51/255


def test_opaque_grey_alpha_becomes_grey(tmp_path):
    arr = np.stack([np.full((9, 9), 77, np.uint8), np.full((9, 9), 255, np.uint8)], -1)
    pixels = load_image(save(tmp_path, "la.png", arr, mode="LA")).pixels
    assert pixels.shape == (9, 9)
    assert (pixels == 77).all()


def test_palette_image_gives_its_colours(tmp_path):
    arr = np.zeros((10, 12, 3), np.uint8)
    arr[:, 6:] = (0, 255, 0)
    pixels = load_image(save(tmp_path, "pal.png", arr, mode="P")).pixels
    assert pixels.shape == (10, 12, 3)
    assert pixels[0, 0].tolist() == [0, 0, 0]
    assert pixels[0, 11].tolist() == [0, 255, 0]


def test_binary_image_is_0_or_255(tmp_path):
    arr = np.zeros((10, 10), np.uint8)
    arr[:5] = 255
    pixels = load_image(save(tmp_path, "bits.png", arr, mode="1")).pixels
    assert set(np.unique(pixels)) == {0.0, 255.0}


def test_float_tiff_keeps_values_and_rejects_nan(tmp_path):
    arr = np.linspace(-1.5, 2.5, 100, dtype=np.float32).reshape(10, 10)
    np.testing.assert_array_equal(load_image(save(tmp_path, "f.tif", arr)).pixels, arr)
    arr[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_image(save(tmp_path, "nan.tif", arr))


def test_multi_page_tiff_gives_middle_page_or_all(tmp_path):
    pages = [PIL.Image.fromarray(np.full((12, 12), v, np.uint8)) for v in (10, 20, 30)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    image = load_image(path)
    assert image.frames == 3
    assert (image.pixels == 20).all()
    stack = load_image(path, all_frames=True).pixels
    assert stack.shape == (3, 12, 12)
    assert stack[:, 0, 0].tolist() == [10, 20, 30]


def test_content_wins_over_suffix(tmp_path):
    arr = np.full((10, 10), 5, np.uint8)
    path = save(tmp_path, "really_a.png", arr)
    path = path.rename(tmp_path / "named.jpg")
    assert load_image(path).header["Format"] == "PNG"


@pytest.mark.parametrize(
    ("size", "match"),
    [((1, 1), "too small"), ((4, 100), "too small")],
)
def test_tiny_images_get_a_clear_error(tmp_path, size, match):
    with pytest.raises(InputError, match=match):
        load_image(save(tmp_path, "tiny.png", np.zeros(size, np.uint8)))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"hello, I am a text file\n", "not an image format"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "damaged or truncated|not an image"),
    ],
)
def test_non_images_get_one_line_errors(tmp_path, content, match):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as info:
        load_image(path)
    assert "\n" not in str(info.value)
    assert str(tmp_path) not in str(info.value)  # file name only, never the directory


def test_truncated_png_gets_one_line_error(tmp_path):
    rng = np.random.default_rng(1)
    path = save(tmp_path, "cut.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match=r"cut\.png: the image file is damaged or truncated"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_describe_a_picture(tmp_path):
    arr = np.arange(100, dtype=np.uint16).reshape(10, 10) * 500
    info = describe(save(tmp_path, "d.png", arr))
    assert info == {
        "file": "d.png",
        "format": "PNG",
        "modality": "photo",
        "shape": [10, 10],
        "frames": 1,
        "stored_dtype": "uint16",
        "spacing_mm": None,
        "value_range": [0.0, 49500.0],
        "header": {"Mode": "I;16"},
    }


def test_io_never_imports_torch():
    code = "import sys, workbench.io; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize(("name", "dtype"), [("big.png", np.uint8), ("big16.png", np.uint16)])
def test_large_picture_is_box_averaged_down_as_it_is_decoded(tmp_path, name, dtype):
    """Issue 18 fault 3: pictures above 1024 px a side come out at most 1024 px, each pixel the
    mean of the block it replaces, in the stored range."""
    scale = 200 if dtype == np.uint16 else 1  # 16-bit values above 255 stay as they are
    blocks = (np.random.default_rng(0).integers(0, 250, (512, 256)) * scale).astype(dtype)
    arr = np.kron(blocks, np.ones((8, 8), dtype))  # 4096 x 2048, constant 8x8 blocks
    image = load_image(save(tmp_path, name, arr))
    assert image.pixels.shape == (1024, 512)
    np.testing.assert_allclose(image.pixels[::2, ::2], blocks, atol=1)
    assert image.header["DownscaledFrom"] == [4096, 2048]


def test_decoding_an_8192_picture_keeps_memory_bounded(tmp_path):
    """Issue 18 fault 3: a 200 KB 8192x8192 PNG took 1.4 GB to decode (3 GB to classify);
    reduced while it is still 8-bit, it needs about the decoded picture's 192 MB."""
    arr = np.zeros((8192, 8192, 3), np.uint8)
    arr[2000:6000, 2000:6000] = 200
    path = save(tmp_path, "huge.png", arr)
    del arr
    script = (
        "import resource, sys\n"
        "from workbench.io import load_image\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "shape = load_image(sys.argv[1]).pixels.shape\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base\n"
        "print(shape, grown // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(")")
    assert out[0] == "(1024, 1024, 3"
    assert int(out[1]) < 400, f"decoding grew the process by {out[1].strip()} MB"
