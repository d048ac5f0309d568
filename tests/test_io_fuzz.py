"""Property-based tests: whatever bytes arrive, workbench.io answers with an Image or InputError.

Any other exception (a pydicom/Pillow/nibabel/zipfile error leaking through) fails the test.
"""

import contextlib
import io
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import InputError
from workbench.io import describe, load_image
from workbench.io.archive import extract_zip

DICOM_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom"
SMALL_DICOMS = [
    "pydicom_3.0.2/MR_small.dcm",
    "pydicom_3.0.2/MR_small_RLE.dcm",
    "pydicom_3.0.2/MR_small_jp2klossless.dcm",
    "pydicom_3.0.2/MR_small_jpeg_ls_lossless.dcm",
    "pydicom_3.0.2/MR_small_bigendian.dcm",
    "pydicom_3.0.2/dicomdirtests_CT2_head/17106",
    "fo-dicom/GH340.dcm",
    "dwv/osirix-cerebrix.dcm",
]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ folder left in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SUFFIXES = st.sampled_from(["", ".dcm", ".png", ".jpg", ".tif", ".nii", ".nii.gz", ".dcm.gz"])


def check_load(path: Path) -> None:
    """Loading must give a finite float32 image, or InputError with one line."""
    try:
        image = load_image(path)
        describe(path)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(path.name + ": ")
        return
    assert image.pixels.dtype == np.float32
    assert np.isfinite(image.pixels).all()
    assert image.pixels.ndim == 2 or image.pixels.shape[-1] == 3


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(arr).save(buffer, format=fmt)
    return buffer.getvalue()


_rng = np.random.default_rng(0)
_rgb = _rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
PICTURES = [
    encoded(_rgb[..., 0].astype(np.uint16) * 200, "PNG"),  # 16-bit grey
    encoded(_rgb, "TIFF"),
    encoded(_rgb[..., 0], "JPEG"),
    encoded(_rgb, "WEBP"),
    nib.Nifti1Image(_rng.random((12, 12, 3), dtype=np.float32), np.eye(4)).to_bytes(),
]


@FUZZ
@given(data=st.binary(max_size=2048), suffix=SUFFIXES)
def test_random_bytes(tmp_path, data, suffix):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(data)
    check_load(path)


@FUZZ
@given(
    header=st.sampled_from([b"\x00" * 128 + b"DICM", b"\x08\x00\x05\x00", b"\x89PNG\r\n\x1a\n"]),
    tail=st.binary(max_size=1024),
)
def test_random_bytes_behind_a_real_magic_number(tmp_path, header, tail):
    path = tmp_path / "magic.dcm"
    path.write_bytes(header + tail)
    check_load(path)


@FUZZ
@given(
    which=st.sampled_from(PICTURES),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_truncated_and_corrupted_pictures_and_volumes(tmp_path, which, cut, flips):
    data = bytearray(which[: max(1, int(len(which) * cut))])
    for position in flips:
        data[position % len(data)] ^= 0xFF
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    check_load(path)


@pytest.mark.parametrize("name", SMALL_DICOMS)
@settings(FUZZ, max_examples=25)
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.integers(0, 10**6), max_size=4))
def test_truncated_and_corrupted_real_dicom(shared_data, tmp_path, name, cut, flips):
    original = (DICOM_DIR / name).read_bytes()
    data = bytearray(original[: max(1, int(len(original) * cut))])
    for position in flips:
        data[position % len(data)] ^= 0xFF
    path = tmp_path / "damaged.dcm"
    path.write_bytes(bytes(data))
    check_load(path)


MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F", "CMYK", "YCbCr"]


@FUZZ
@given(
    mode=st.sampled_from(MODES),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    fmt=st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]),
    seed=st.integers(0, 2**16),
)
def test_random_small_images_of_random_modes(tmp_path, mode, size, fmt, seed):
    rng = np.random.default_rng(seed)
    im = PIL.Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    try:
        im.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format: nothing to read back
    path = tmp_path / f"random.{fmt.lower()}"
    path.write_bytes(buffer.getvalue())
    if min(size) < 8:
        with pytest.raises(InputError, match="too small"):
            load_image(path)
        return
    if not pillow_can_read(buffer.getvalue()):  # e.g. Pillow's own YCbCr TIFF
        with pytest.raises(InputError, match="damaged"):
            load_image(path)
        return
    image = load_image(path)
    assert image.pixels.shape[:2] == (size[0], size[1])
    assert image.pixels.dtype == np.float32 and np.isfinite(image.pixels).all()


def pillow_can_read(data: bytes) -> bool:
    try:
        PIL.Image.open(io.BytesIO(data)).load()
    except Exception:
        return False
    return True


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_as_zip(tmp_path, data):
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    with contextlib.suppress(InputError):
        extract_zip(path, tmp_path / "out")


@FUZZ
@given(
    names=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    cut=st.floats(0.2, 1.0),
)
def test_zips_with_random_names_and_truncation(tmp_path, names, cut):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.writestr(name, name.encode() * 10)
    data = buffer.getvalue()
    path = tmp_path / "names.zip"
    path.write_bytes(data[: max(1, int(len(data) * cut))])
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        files = extract_zip(path, out)
    except InputError:
        return
    assert all(f.is_relative_to(out.resolve()) and f.is_file() for f in files)
