"""The series loader: shuffled DICOM back in (slice, time) order, affine, TR, NIfTI, errors."""

import warnings
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from workbench.errors import InputError
from workbench.io.series import load_series
from workbench.phantom.perfusion import (
    DscPatient,
    DscSpec,
    reference_tmax,
    simulate_dsc,
    write_dsc,
)

SPEC = {"shape": (4, 32, 32), "n_times": 12}
SEED = 5


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, DscPatient]:
    """One tiny simulated patient on disk, and the arrays it was written from."""
    folder = write_dsc(tmp_path_factory.mktemp("dsc"), n=1, seed=SEED, **SPEC) / "patient_000"
    patient = simulate_dsc(np.random.default_rng([SEED, 0]), DscSpec(**SPEC))
    return folder, np.round(patient.signal), patient.affine, patient


def test_shuffled_files_come_back_in_slice_and_time_order(written):
    folder, expected, affine, _ = written
    files = sorted((folder / "dsc").iterdir())
    numbers = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in files]
    assert numbers != sorted(numbers), "the file names should not give the order away"
    series = load_series(folder / "dsc")
    assert series.data.shape == (4, 32, 32, 12)
    np.testing.assert_array_equal(series.data, expected)
    np.testing.assert_allclose(series.affine, affine, atol=1e-6)
    assert series.tr == pytest.approx(1.5, abs=1e-6)
    assert series.te == pytest.approx(0.03)
    np.testing.assert_allclose(series.times, np.arange(12) * 1.5, atol=1e-6)


def test_affine_follows_dicom_geometry(written):
    """Axial slices with IOP (1,0,0,0,1,0): columns go to patient left (RAS −x), rows to
    posterior (RAS −y), slices up; the origin is the first slice's ImagePositionPatient."""
    series = load_series(written[0] / "dsc")
    px = 230.0 / 32
    np.testing.assert_allclose(np.diag(series.affine)[:3], [-px, -px, 120.0 / 4])
    np.testing.assert_allclose(series.affine[:3, 3], [115.0, 115.0, -60.0])
    assert series.voxel_volume_ml == pytest.approx(px * px * 30.0 / 1000)


def test_zip_of_the_series_reads_the_same(written, tmp_path):
    folder, expected, *_ = written
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in (folder / "dsc").iterdir():
            zf.write(file, f"export/{file.name}")
    np.testing.assert_array_equal(load_series(archive).data, expected)


def test_a_missing_image_is_zero_filled_with_a_warning(written, tmp_path):
    folder, expected, *_ = written
    target = tmp_path / "dsc"
    target.mkdir()
    for file in (folder / "dsc").iterdir():
        target.joinpath(file.name).write_bytes(file.read_bytes())
    victim = next(target.iterdir())
    ds = pydicom.dcmread(victim, stop_before_pixels=True)
    t = int(ds.TemporalPositionIdentifier) - 1
    victim.unlink()
    with pytest.warns(UserWarning, match="zero-filled"):
        series = load_series(target)
    z = int(np.flatnonzero(~series.data[..., t].any(axis=(1, 2)))[0])
    assert float(ds.ImagePositionPatient[2]) == pytest.approx(-60.0 + 30.0 * z)
    keep = np.ones(expected.shape[::3], bool)
    keep[z, t] = False
    np.testing.assert_array_equal(
        series.data.transpose(0, 3, 1, 2)[keep], expected.transpose(0, 3, 1, 2)[keep]
    )


def test_too_many_missing_images_is_a_clear_error(written, tmp_path):
    folder = written[0]
    files = sorted((folder / "dsc").iterdir())[:40]  # 40 of 48 images: 17% missing
    target = tmp_path / "dsc"
    target.mkdir()
    for file in files:
        target.joinpath(file.name).write_bytes(file.read_bytes())
    with pytest.raises(InputError, match="missing"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_series(target)


def test_reference_map_series_is_a_single_volume(written):
    tmax = load_series(written[0] / "tmax")
    assert tmax.data.shape == (4, 32, 32, 1)
    # stored in 0.1 s steps with RescaleSlope 0.1: the loader gives seconds back
    np.testing.assert_allclose(tmax.data[..., 0], reference_tmax(written[3]), atol=0.051)


def test_nifti_axes_and_tr_override(tmp_path):
    volume = np.random.default_rng(0).random((5, 6, 3, 7)).astype(np.float32)  # x, y, z, t
    image = nib.Nifti1Image(volume, np.diag([2.0, 2.0, 4.0, 1.0]))
    image.header.set_zooms((2.0, 2.0, 4.0, 1.0))  # a wrong time step, as some exports have
    nib.save(image, tmp_path / "dsc.nii.gz")
    series = load_series(tmp_path / "dsc.nii.gz", tr=1.243)
    assert series.data.shape == (3, 6, 5, 7)
    np.testing.assert_array_equal(series.data[2, 4, 1], volume[1, 4, 2])
    assert series.tr == 1.243
    np.testing.assert_allclose(series.times[-1], 6 * 1.243)
    assert load_series(tmp_path / "dsc.nii.gz").tr == 1.0
    back = series.to_nifti(series.data[..., 0])
    np.testing.assert_array_equal(np.asarray(back.dataobj), volume[..., 0])


def test_not_a_series_is_a_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="no DICOM images"):
        load_series(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        load_series(tmp_path / "absent.nii.gz")


def _edited_copy(folder: Path, target: Path, edit) -> Path:
    """The series with ``edit(ds)`` applied to every file's header."""
    target.mkdir()
    with pydicom.config.disable_value_validation():  # write what a broken exporter writes
        for file in folder.iterdir():
            ds = pydicom.dcmread(file)
            edit(ds)
            ds.save_as(target / file.name)
    return target


@pytest.mark.parametrize(
    ("keyword", "value", "match"),
    [
        ("ImageOrientationPatient", [1, 0, 0], "ImageOrientationPatient does not hold 6"),
        ("ImageOrientationPatient", [1, 0, 0, 1, 0, 0], "perpendicular"),
        ("PixelSpacing", [1.0], "PixelSpacing does not hold 2"),
        ("PixelSpacing", [0, 0], "PixelSpacing is not positive"),
        ("ImagePositionPatient", [1.0, 2.0], "ImagePositionPatient does not hold 3"),
    ],
)
def test_bad_geometry_tags_get_one_line_errors(written, tmp_path, keyword, value, match):
    """Issue 18 fault 5: these crashed the reader with ValueError / TypeError tracebacks."""
    series = _edited_copy(
        written[0] / "dsc", tmp_path / "dsc", lambda ds: setattr(ds, keyword, value)
    )
    with pytest.raises(InputError, match=match):
        load_series(series)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("everywhere", [True, False])
def test_nan_or_inf_in_a_4d_nifti_is_refused(tmp_path, bad, everywhere):
    """Issue 18 fault 5: an all-NaN series raised IndexError; a few NaN/inf passed silently."""
    volume = np.random.default_rng(0).random((8, 8, 3, 12)).astype(np.float32)
    if everywhere:
        volume[:] = bad
    else:
        volume[2, 3, 1, 5] = bad
    image = nib.Nifti1Image(volume, np.eye(4))
    image.header.set_zooms((1.0, 1.0, 1.0, 1.5))
    nib.save(image, tmp_path / "dsc.nii.gz")
    with pytest.raises(InputError, match="NaN or infinite"):
        load_series(tmp_path / "dsc.nii.gz")


def test_damaged_nifti_names_neither_the_path_nor_the_library(tmp_path):
    (tmp_path / "dsc.nii.gz").write_bytes(b"not gzip at all" * 30)
    with pytest.raises(InputError) as error:
        load_series(tmp_path / "dsc.nii.gz")
    assert str(tmp_path) not in str(error.value) and "gzip" not in str(error.value)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_nifti_or_zip_without_its_extension_reads_the_same(written, tmp_path, suffix):
    """PACS and CD exports, and some uploads, lose the file name: the content decides."""
    volume = np.random.default_rng(1).random((5, 6, 3, 7)).astype(np.float32)
    image = nib.Nifti2Image(volume, np.diag([2.0, 2.0, 4.0, 1.0]))  # NIfTI-2 too
    image.header.set_zooms((2.0, 2.0, 4.0, 1.5))
    named = tmp_path / f"dsc{suffix}"
    nib.save(image, named)
    bare = tmp_path / "dsc_export"
    bare.write_bytes(named.read_bytes())
    np.testing.assert_array_equal(load_series(bare).data, load_series(named).data)
    assert load_series(bare).tr == 1.5
    folder, expected, *_ = written
    archive = tmp_path / "series_export"  # a zip of the DICOM series, no .zip
    with zipfile.ZipFile(archive, "w") as zf:
        for file in (folder / "dsc").iterdir():
            zf.write(file, file.name)
    np.testing.assert_array_equal(load_series(archive).data, expected)
