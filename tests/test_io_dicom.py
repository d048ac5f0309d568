"""DICOM reading: physical units, photometry, frames, old encodings, broken files, no IDs."""

import gzip
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from workbench.errors import InputError
from workbench.io import describe, load_image
from workbench.io.dicom import deidentified_summary, read_dicom

DICOM_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom"
REAL_FILES = sorted(
    p.relative_to(DICOM_DIR).as_posix()
    for p in DICOM_DIR.rglob("*")
    if p.is_file() and p.name != "README.md"
)
# The README marks these BROKEN: they must get the one-line error, never an image.
BROKEN = {
    "fo-dicom/GH1146.dcm",
    "pydicom_3.0.2/JPEG2000-embedded-sequence-delimiter.dcm",
    "pydicom_3.0.2/MR_truncated.dcm",
}
IDENTIFYING = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "OperatorsName",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "StationName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
]
PERSON_NAMES = {"PatientName", "ReferringPhysicianName", "OperatorsName"}
# Placeholders, and words the reader writes itself ("Format": "DICOM"), are not identifiers.
NOT_IDENTIFYING = {"anonymized", "anonymous", "anonymou", "----", "dicom"}


def make_dataset(pixels: np.ndarray, **tags: object) -> Dataset:
    """A small MR dataset with pseudonymous identifiers and the given stored pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.PatientName = "Doe^Johnathan"
    ds.PatientID = "PID778899"
    ds.InstitutionName = "Saint Elsewhere Clinic"
    ds.StudyDate = "20210304"
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    ds.set_pixel_data(pixels, "MONOCHROME2", pixels.dtype.itemsize * 8)
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path, **kw: object) -> Path:
    ds.save_as(path, **kw)
    return path


def identifiers(ds: Dataset) -> set[str]:
    """Identifier strings worth searching for: whole values, and the parts of person names
    (which may appear reordered), long enough not to collide with technical numbers."""
    found = set()
    for keyword in IDENTIFYING:
        try:
            text = str(ds.get(keyword) or "").strip()
        except Exception:
            continue
        parts = [text, *text.replace("^", " ").split()] if keyword in PERSON_NAMES else [text]
        found.update(
            p for p in parts if len(p) >= 4 and p.lower() not in NOT_IDENTIFYING and not p.isdigit()
        )
        found.update(p for p in parts if p.isdigit() and len(p) >= 5)
    return found


# --- real files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_FILES)
def test_every_real_file_loads_or_gets_one_line_error(shared_data, name):
    path = DICOM_DIR / name
    try:
        image = load_image(path)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(path.name + ": ")
        assert "\n" not in message and "Traceback" not in message
        return
    assert name not in BROKEN, f"{name} is broken but loaded"
    assert image.pixels.dtype == np.float32
    assert image.pixels.ndim == 2 or image.pixels.shape[-1] == 3
    assert np.isfinite(image.pixels).all()
    assert image.source == path.name


@pytest.mark.parametrize("name", REAL_FILES)
def test_no_identifier_reaches_header_or_describe(shared_data, name):
    path = DICOM_DIR / name
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(
            io.BytesIO(gzip.decompress(data) if name.endswith(".gz") else data), force=True
        )
    secrets = identifiers(ds)
    try:
        info = describe(path)
        text = repr(load_image(path).header) + json.dumps(info)
    except InputError as exc:
        text = str(exc)
    text = text.replace(path.name, "")  # the user's own file name is not ours to scrub
    text = text.lower()
    leaked = sorted(s for s in secrets if s.lower() in text)
    assert not leaked


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_get_the_input_error(shared_data, name):
    with pytest.raises(InputError):
        load_image(DICOM_DIR / name)


def test_truncated_file_message(shared_data):
    with pytest.raises(InputError) as info:
        load_image(DICOM_DIR / "fo-dicom/GH1146.dcm")
    assert str(info.value) == (
        "GH1146.dcm: the DICOM pixel data is shorter than its header says (truncated file); "
        "re-export the image."
    )


def test_mr_small_identical_across_transfer_syntaxes(shared_data):
    folder = DICOM_DIR / "pydicom_3.0.2"
    reference = load_image(folder / "MR_small.dcm").pixels
    assert reference.shape == (64, 64) and reference.std() > 0
    for variant in ("RLE", "bigendian", "implicit", "jp2klossless", "jpeg_ls_lossless"):
        np.testing.assert_array_equal(
            load_image(folder / f"MR_small_{variant}.dcm").pixels, reference
        )


def test_dcm_qa_ts_identical_across_nine_encodings(shared_data):
    folder = DICOM_DIR / "dcm_qa_ts"
    reference = load_image(folder / "1.dcm").pixels
    assert reference.shape == (384, 384) and reference.std() > 0
    for i in range(2, 10):
        np.testing.assert_array_equal(load_image(folder / f"{i}.dcm").pixels, reference, f"{i}.dcm")


def test_monochrome1_is_inverted_within_stored_range(shared_data):
    path = DICOM_DIR / "dwv/gdcm-CR-MONO1-10-chest.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 10
    np.testing.assert_array_equal(load_image(path).pixels, 1023 - ds.pixel_array.astype(np.float32))


def test_acr_nema_ct_without_meta_is_rescaled_to_hu(shared_data):
    path = DICOM_DIR / "DICOMSamples/CT_Implicit_Little_Headless_Retired.dcm"
    ds = pydicom.dcmread(path, force=True)
    stored = np.frombuffer(ds.PixelData, "<u2").reshape(512, 512).astype(np.float32)
    image = load_image(path)
    assert image.modality == "CT"
    np.testing.assert_array_equal(image.pixels, stored - 1024)  # RS "001.0E+00", RI "-01.024E+03"
    assert image.spacing is not None


def test_packed_12_bit_acr_nema_decodes_to_a_smooth_image(shared_data):
    """A wrong unpacking scrambles neighbouring pixels; the right one keeps them correlated."""
    pixels = load_image(DICOM_DIR / "fo-dicom/GH340.dcm").pixels
    assert pixels.shape == (256, 256) and pixels.max() < 4096
    left, right = pixels[:, :-1].ravel(), pixels[:, 1:].ravel()
    assert np.corrcoef(left, right)[0, 1] > 0.8


def test_gzipped_enhanced_multiframe(shared_data):
    image = load_image(DICOM_DIR / "nibabel_5.4.2/philips_mprage.dcm.gz")
    assert image.frames == 176
    assert image.pixels.shape == (256, 256)


# --- synthetic files with known answers ------------------------------------------------------


def test_rescale_slope_intercept(tmp_path):
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8) * 10
    ds = make_dataset(stored, RescaleSlope="2", RescaleIntercept="-1024", Modality="CT")
    image = read_dicom(save(ds, tmp_path / "ct.dcm"))
    np.testing.assert_array_equal(image.pixels, stored * 2.0 - 1024)
    assert image.modality == "CT"


def test_synthetic_monochrome1(tmp_path):
    stored = np.arange(100, dtype=np.uint16).reshape(10, 10)
    ds = make_dataset(stored, PhotometricInterpretation="MONOCHROME1", BitsStored=8, HighBit=7)
    np.testing.assert_array_equal(load_image(save(ds, tmp_path / "m1.dcm")).pixels, 255.0 - stored)


def test_multi_frame_middle_and_all(tmp_path):
    stored = np.stack([np.full((8, 9), v, np.uint16) for v in (1, 2, 3, 4, 5)])
    path = save(make_dataset(stored), tmp_path / "mf.dcm")
    image = load_image(path)
    assert image.frames == 5 and image.pixels.shape == (8, 9) and (image.pixels == 3).all()
    every = load_image(path, all_frames=True)
    assert every.pixels.shape == (5, 8, 9)
    assert every.pixels[:, 0, 0].tolist() == [1, 2, 3, 4, 5]


def test_rescale_in_functional_groups(tmp_path):
    stored = np.stack([np.full((8, 8), 100, np.uint16)] * 3)
    ds = make_dataset(stored)
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = "0.5", "10", "US"
    shared = Dataset()
    shared.PixelValueTransformationSequence = [transform]
    measures = Dataset()
    measures.PixelSpacing = [0.7, 0.8]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    image = load_image(save(ds, tmp_path / "enh.dcm"))
    assert (image.pixels == 60).all()  # 100 * 0.5 + 10
    assert image.spacing == (0.7, 0.8)


def test_packed_12_bit_synthetic(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4096, 64, dtype=np.uint16)
    a, b = values[0::2].astype(np.uint32), values[1::2].astype(np.uint32)
    packed = np.stack([a & 0xFF, (a >> 8) | ((b & 0xF) << 4), b >> 4], 1).astype(np.uint8)
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 12, 12, 11
    ds.PixelData = packed.tobytes()
    pixels = load_image(save(ds, tmp_path / "p12.dcm")).pixels
    np.testing.assert_array_equal(pixels.ravel(), values)


def test_rgb_dicom(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 200
    ds = make_dataset(np.zeros((8, 8), np.uint8))
    ds.set_pixel_data(rgb, "RGB", 8)
    pixels = load_image(save(ds, tmp_path / "rgb.dcm")).pixels
    assert pixels.shape == (8, 8, 3)
    assert pixels[0, 0].tolist() == [0, 200, 0]


def test_palette_colour_dicom(tmp_path):
    indices = np.zeros((8, 8), np.uint8)
    indices[:, 4:] = 1
    ds = make_dataset(indices, PhotometricInterpretation="PALETTE COLOR")
    for colour, entries in (("Red", [0, 65535]), ("Green", [0, 0]), ("Blue", [0, 32768])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [2, 0, 16])
        lut = np.array(entries, "<u2").tobytes()
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut)
    pixels = load_image(save(ds, tmp_path / "palette.dcm")).pixels
    assert pixels.shape == (8, 8, 3)
    assert pixels[0, 0].tolist() == [0, 0, 0]
    assert pixels[0, 7].tolist() == [65535, 0, 32768]


def test_no_preamble_no_file_meta_and_gzip(tmp_path):
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8)
    ds = make_dataset(stored)
    del ds.file_meta
    raw = save(ds, tmp_path / "raw", implicit_vr=True, little_endian=True)
    assert raw.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(load_image(raw).pixels, stored)
    gz = tmp_path / "raw.dcm.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    np.testing.assert_array_equal(load_image(gz).pixels, stored)


def test_spacing_sources(tmp_path):
    ds = make_dataset(np.zeros((8, 8), np.uint16), ImagerPixelSpacing=[0.2, 0.3])
    assert load_image(save(ds, tmp_path / "a.dcm")).spacing == (0.2, 0.3)
    ds.PixelSpacing = [0.5, 0.5]
    assert load_image(save(ds, tmp_path / "b.dcm")).spacing == (0.5, 0.5)
    ds.PixelSpacing = [0, -1]
    del ds.ImagerPixelSpacing
    assert load_image(save(ds, tmp_path / "c.dcm")).spacing is None


def test_summary_is_a_scrubbed_whitelist(tmp_path):
    ds = make_dataset(
        np.zeros((8, 8), np.uint16),
        SeriesDescription="T2 ax Johnathan DOE 2021-03-04 PID778899 Saint Elsewhere Clinic",
        EchoTime="90",
        ImageType=["ORIGINAL", "PRIMARY"],
    )
    summary = deidentified_summary(ds)
    assert summary["EchoTime"] == 90
    assert summary["ImageType"] == ["ORIGINAL", "PRIMARY"]
    assert summary["TransferSyntax"] == "Explicit VR Little Endian"
    description = summary["SeriesDescription"]
    assert description.startswith("T2 ax ")
    for secret in ("johnathan", "doe", "2021", "778899", "elsewhere"):
        assert secret not in description.lower()
    assert not {"PatientName", "PatientID", "InstitutionName", "StudyDate", "SOPInstanceUID"} & set(
        summary
    )
    json.dumps(summary)  # JSON-able


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is plainly not dicom at all" * 4, "not a readable DICOM file"),
        (b"\x00" * 128 + b"DICM" + b"\x00" * 10, "not a readable DICOM file"),
    ],
)
def test_files_claiming_to_be_dicom(tmp_path, content, match):
    path = tmp_path / "claims.dcm"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_image(path)


def test_dicom_without_pixels(tmp_path):
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    del ds.PixelData
    with pytest.raises(InputError, match="holds no image"):
        load_image(save(ds, tmp_path / "sr.dcm"))


def test_unsupported_bit_depth(tmp_path):
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    ds.BitsAllocated = 24
    with pytest.raises(InputError, match="24 bits are not supported"):
        load_image(save(ds, tmp_path / "b24.dcm"))


def test_12_bit_jpeg_extended_decodes():
    """Issue 18 fault 12: NEMA's 12-bit lossy JPEG (pydicom's JPEG-lossy.dcm, like WG04's
    MR1_JPLY) was called corrupt; it is the same image as JPGExtended.dcm, which pylibjpeg reads
    (lossy decoders may round one grey level apart)."""
    from pydicom.data import get_testdata_file

    lossy = load_image(get_testdata_file("JPEG-lossy.dcm")).pixels
    reference = load_image(get_testdata_file("JPGExtended.dcm")).pixels
    assert lossy.shape == (1024, 256) and lossy.max() > 255  # 12-bit values
    np.testing.assert_allclose(lossy, reference, atol=1)


def test_12_bit_jpeg_extended_without_its_decoder_says_what_is_missing(monkeypatch):
    from pydicom.data import get_testdata_file
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder

    from workbench.io import jpeg12

    monkeypatch.delitem(JPEGExtended12BitDecoder._available, jpeg12.LABEL)
    with pytest.raises(InputError, match="JPEG Extended 12-bit is not supported; export unc"):
        load_image(get_testdata_file("JPEG-lossy.dcm"))
