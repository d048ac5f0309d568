"""NIfTI volumes: raw access for series, oriented axial slices for load_image."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from workbench.errors import InputError
from workbench.io import describe, load_image, load_nifti
from workbench.io.limits import Limits


def marked_volume() -> np.ndarray:
    """10x12x5 volume (x right, y anterior, z up) with one bright voxel at left-anterior."""
    volume = np.zeros((10, 12, 5), np.float32)
    volume[0, 11, :] = 100  # x=0 is the patient's left-most column, y=11 the most anterior
    return volume


def test_load_nifti_applies_scaling_and_returns_affine(tmp_path):
    data = np.arange(8 * 8 * 3, dtype=np.int16).reshape(8, 8, 3)
    affine = np.diag([0.5, 0.6, 2.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(2.0, -5.0)
    path = tmp_path / "vol.nii.gz"
    nib.save(img, path)
    voxels, out_affine = load_nifti(path)
    assert voxels.dtype == np.float32
    np.testing.assert_allclose(voxels, data * 2.0 - 5.0)
    np.testing.assert_allclose(out_affine, affine)


def test_4d_volume_loads_raw_but_not_as_an_image(tmp_path):
    path = tmp_path / "dsc.nii"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2, 4), np.float32), np.eye(4)), path)
    assert load_nifti(path)[0].shape == (8, 8, 2, 4)
    with pytest.raises(InputError, match="4D series"):
        load_image(path)


@pytest.mark.parametrize("flip_x", [False, True])
def test_axial_slice_has_anterior_up_and_left_on_the_right_as_dicom_shows_it(tmp_path, flip_x):
    volume = marked_volume()
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    if flip_x:  # the same anatomy stored with x running right-to-left (LAS)
        volume = volume[::-1].copy()
        affine[0, 0] = -2.0
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(volume, affine), path)
    image = load_image(path)
    assert image.pixels.shape == (12, 10)  # rows = y, columns = x
    assert image.pixels[0, -1] == 100  # anterior (top row), patient's left (last column)
    assert image.pixels.sum() == 100
    assert image.spacing == (3.0, 2.0)
    assert image.frames == 5
    assert load_image(path, all_frames=True).pixels.shape == (5, 12, 10)


def test_nifti_is_sniffed_by_content(tmp_path):
    path = tmp_path / "vol.nii"
    nib.save(nib.Nifti1Image(marked_volume(), np.eye(4)), path)
    renamed = tmp_path / "upload.bin.gz"
    renamed.write_bytes(gzip.compress(path.read_bytes()))
    info = describe(renamed)
    assert info["format"] == "NIfTI"
    assert info["header"]["Shape"] == [10, 12, 5]


def test_nan_truncation_and_size_limits(tmp_path):
    volume = marked_volume()
    volume[1, 1, 1] = np.nan
    nan_path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), nan_path)
    with pytest.raises(InputError, match="NaN"):
        load_nifti(nan_path)

    ok = tmp_path / "ok.nii"
    nib.save(nib.Nifti1Image(marked_volume(), np.eye(4)), ok)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(ok.read_bytes()[:600])
    with pytest.raises(InputError, match="truncated"):
        load_nifti(cut)
    with pytest.raises(InputError, match="above the limit"):
        load_nifti(ok, limits=Limits(max_volume_voxels=100))


@pytest.mark.parametrize("reader", [load_image, load_nifti])
def test_gzip_nifti_declaring_gigabytes_is_refused_from_its_header(tmp_path, reader):
    """Issue 18 fault 7: a .nii.gz declaring 8 GB was unpacked (up to 1 GiB) before refusal."""
    import tracemalloc

    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.int8), np.eye(4)).header
    header.set_data_shape((2048, 2048, 2048))  # 8 GB of int8
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + bytes(4 + (64 << 20)), compresslevel=1))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="above the limit"):
            reader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB held: the payload was unpacked"


def test_every_stored_voxel_order_reaches_the_one_axial_orientation_and_back():
    from itertools import permutations, product

    from workbench.io.orientation import from_axial, to_axial

    rng = np.random.default_rng(0)
    # In LPS voxel order, voxel (0, 0, 0) is the right, anterior, inferior corner.
    lps = rng.random((4, 5, 6)).astype(np.float32)
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for axes, flips in product(permutations(range(3)), product([False, True], repeat=3)):
        data, affine = np.transpose(lps, axes), lps_affine[:, [*axes, 3]].copy()
        for k, flip in enumerate(flips):
            if flip:  # voxel i becomes n-1-i: the column's direction turns, its origin moves
                n = data.shape[k]
                data = np.flip(data, k)
                affine[:, 3] += affine[:, k] * (n - 1)
                affine[:, k] *= -1
        assert np.array_equal(to_axial(data, affine), lps), (axes, flips)
        assert np.array_equal(from_axial(to_axial(data, affine), affine), data)
