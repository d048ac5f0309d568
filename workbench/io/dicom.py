"""DICOM through pydicom 3: pixels in physical units, and a header free of identifiers.

What a reader has to get right beyond ``ds.pixel_array``:

* rescale slope/intercept or a Modality LUT (HU for CT), also when an enhanced multi-frame file
  keeps them in its functional groups;
* MONOCHROME1 (high value = dark) inverted so that a higher value is always brighter;
* compressed transfer syntaxes, decoded by the pylibjpeg plugins;
* ACR-NEMA files (no preamble, no file meta, no PhotometricInterpretation, packed 12-bit);
* broken files, which must fail with one sentence, never with pydicom's traceback.

No identifier leaves this module: :func:`deidentified_summary` copies a whitelist of technical
tags and scrubs the free text it copies.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
)
from pydicom.valuerep import PersonName

from workbench.errors import InputError
from workbench.io import jpeg12
from workbench.io.images import Image
from workbench.io.limits import DEFAULT_LIMITS, Limits, check_image_size, read_bounded

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
jpeg12.register()

# (implicit VR, little endian) as pydicom found them -> the transfer syntax a file without
# file meta (ACR-NEMA, raw datasets) was written in.
_ENCODING_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


@contextmanager
def _failing_as(source: str, message: str) -> Iterator[None]:
    """Turn any pydicom/numpy failure inside the block into one InputError sentence.

    pydicom parses lazily and reports bad values through many exception types, so the catch
    is broad; the message is ours alone, since the library's text may quote header values.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{source}: the image is too large to decode in memory.") from None
    except Exception:
        raise InputError(f"{source}: {message}") from None


def read_dicom(
    path: str | os.PathLike, *, all_frames: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Image:
    """Read a DICOM file (also ``.dcm.gz``) into an :class:`Image` in physical units."""
    path = Path(path)
    data = read_bounded(path, limits)
    return dicom_from_bytes(data, path.name, all_frames=all_frames, limits=limits)


def dicom_from_bytes(
    data: bytes, source: str, *, all_frames: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Image:
    """Decode DICOM bytes; ``source`` is the file name used in messages and ``Image.source``."""
    ds = parse(data, source)
    with _failing_as(source, "the DICOM header holds invalid values; re-export the image."):
        _fill_acr_nema_defaults(ds, source)
        frames = _validate(ds, source, limits, all_frames)
        header = deidentified_summary(ds)
        spacing = _spacing(ds)
    indices = list(range(frames)) if all_frames else [frames // 2]
    stored = _decode(ds, source, frames, indices)
    with _failing_as(source, "the DICOM rescale or lookup table is invalid; re-export the image."):
        pixels = _to_physical(stored, ds, indices, all_frames)
    if not np.isfinite(pixels).all():
        raise InputError(f"{source}: the DICOM pixel values are not finite numbers (NaN/inf).")
    header["Format"] = "DICOM"
    header["StoredDataType"] = stored.dtype.name
    return Image(pixels, spacing, _modality(ds), header, source, frames=frames)


NOT_DICOM = "not a readable DICOM file; check that it is a DICOM image."
JPEG_12_BIT = "JPEG Extended 12-bit is not supported; export uncompressed."


def parse(data: bytes, source: str) -> Dataset:
    """Parse DICOM bytes with or without preamble/file meta; InputError when it is not DICOM."""
    with _failing_as(source, NOT_DICOM):
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if not any(k in ds for k in PIXEL_KEYWORDS):
            # force=True "parses" any bytes; tell a real image-less DICOM from noise.
            if "SOPClassUID" in ds or "Modality" in ds or "Rows" in ds:
                raise InputError(
                    f"{source}: this DICOM file holds no image (no Pixel Data); "
                    "choose an image file."
                )
            raise InputError(f"{source}: {NOT_DICOM}")
    return ds


def _fill_acr_nema_defaults(ds: Dataset, source: str) -> None:
    """Add what ACR-NEMA files omit and pydicom's decoder needs, with the ACR-NEMA defaults."""
    if "TransferSyntaxUID" not in ds.get("file_meta", {}):
        syntax = _ENCODING_SYNTAX.get(ds.original_encoding)
        if syntax is None:
            raise InputError(f"{source}: the DICOM encoding cannot be determined; re-export it.")
        ds.file_meta = ds.get("file_meta") or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    if ds.get("SamplesPerPixel") is None:
        ds.SamplesPerPixel = 1
    if ds.get("PhotometricInterpretation") is None and ds.SamplesPerPixel == 1:
        ds.PhotometricInterpretation = "MONOCHROME2"
    if ds.get("PixelRepresentation") is None:
        ds.PixelRepresentation = 0
    if "PixelData" in ds and ds.get("BitsStored") is None and ds.get("BitsAllocated"):
        ds.BitsStored = ds.BitsAllocated
    if "PixelData" in ds and ds.get("HighBit") is None and ds.get("BitsStored"):
        ds.HighBit = ds.BitsStored - 1


def _whole_number(ds: Dataset, keyword: str, source: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value in (None, ""):
        if default is not None:
            return default
        raise InputError(f"{source}: the DICOM header has no {keyword}; it does not hold an image.")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(
            f"{source}: the DICOM header's {keyword} is not a whole number; re-export the image."
        ) from None


def _validate(ds: Dataset, source: str, limits: Limits, all_frames: bool) -> int:
    """Check geometry, limits and (for uncompressed data) length; return the frame count."""
    rows = _whole_number(ds, "Rows", source)
    cols = _whole_number(ds, "Columns", source)
    frames = _whole_number(ds, "NumberOfFrames", source, default=1)
    samples = _whole_number(ds, "SamplesPerPixel", source, default=1)
    if frames < 1 or samples not in (1, 3):
        raise InputError(
            f"{source}: the DICOM header describes {frames} frames of {samples} samples per "
            "pixel, which is not an image this workbench reads."
        )
    check_image_size(rows, cols, source, limits, frames=frames * samples if all_frames else samples)
    if "PixelData" not in ds:
        return frames
    bits = _whole_number(ds, "BitsAllocated", source)
    if bits not in (1, 8, 12, 16, 32, 64):
        raise InputError(
            f"{source}: DICOM pixels of {bits} bits are not supported; "
            "re-export the image with 8 or 16 bits."
        )
    syntax = ds.file_meta.TransferSyntaxUID
    if bits == 12 and syntax.is_compressed:
        raise InputError(f"{source}: compressed packed 12-bit DICOM is not supported.")
    expected = math.ceil(rows * cols * frames * samples * bits / 8)
    if not syntax.is_compressed and len(ds.PixelData or b"") < expected:
        raise InputError(
            f"{source}: the DICOM pixel data is shorter than its header says (truncated file); "
            "re-export the image."
        )
    return frames


def _decode(ds: Dataset, source: str, frames: int, indices: list[int]) -> np.ndarray:
    """Stored values of the chosen frames, (F, H, W[, 3]), in the file's own dtype."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise InputError(
            f"{source}: DICOM pixel data encoded as '{syntax.name}' cannot be decoded here; "
            "re-export the image uncompressed."
        )
    corrupt = (
        f"the DICOM pixel data ({syntax.name}) is corrupt and cannot be decoded; "
        "re-export the image."
    )
    if syntax == JPEGExtended12Bit and int(ds.get("BitsStored") or 8) > 8:
        corrupt = JPEG_12_BIT  # valid files, when imagecodecs (libjpeg-turbo) is missing
    with _failing_as(source, corrupt):
        if ds.get("BitsAllocated") == 12:
            return _unpack_12bit(ds)[indices]
        if len(indices) == frames:
            arr = pixel_array(ds)
            return arr if frames > 1 else arr[None]
        return np.stack([pixel_array(ds, index=i) for i in indices])


def _unpack_12bit(ds: Dataset) -> np.ndarray:
    """ACR-NEMA packed 12-bit (two pixels in three bytes), which pydicom does not decode.

    Same layout as GDCM's Unpacker12Bits: p0 = b0 | (b1 & 0xF) << 8, p1 = b1 >> 4 | b2 << 4.
    """
    n = ds.Rows * ds.Columns * int(ds.get("NumberOfFrames") or 1)
    packed = np.frombuffer(ds.PixelData, np.uint8, count=(n + 1) // 2 * 3).reshape(-1, 3)
    b0, b1, b2 = packed.astype(np.uint16).T
    pixels = np.stack([b0 | (b1 & 0xF) << 8, b1 >> 4 | b2 << 4], axis=1).reshape(-1)[:n]
    return pixels.reshape(-1, ds.Rows, ds.Columns)


def _to_physical(
    stored: np.ndarray, ds: Dataset, indices: list[int], all_frames: bool
) -> np.ndarray:
    """Apply the modality LUT / rescale per frame and invert MONOCHROME1; float32 out."""
    if ds.get("SamplesPerPixel", 1) == 3:
        out = stored.astype(np.float32)  # colour: no modality LUT applies
    elif ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        out = apply_color_lut(stored, ds).astype(np.float32)
    else:
        out = np.stack(
            [_physical_frame(frame, ds, i) for frame, i in zip(stored, indices, strict=True)]
        )
    return out if all_frames else out[0]


def _physical_frame(frame: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    lut = _modality_lut_source(ds, index)
    if "PixelData" in ds and ds.get("PhotometricInterpretation") == "MONOCHROME1":
        # Invert within the stored range, before the LUT, so the physical range is kept.
        bits = ds.get("BitsStored") or frame.dtype.itemsize * 8
        low = -(1 << (bits - 1)) if ds.PixelRepresentation == 1 else 0
        high = low + (1 << bits) - 1
        frame = (high + low) - frame.astype(np.int64)
    return np.asarray(apply_modality_lut(frame, lut), dtype=np.float32)


def _modality_lut_source(ds: Dataset, index: int) -> Dataset:
    """The dataset holding this frame's Rescale / Modality LUT: an enhanced multi-frame file
    keeps it in a functional group, which ``apply_modality_lut`` does not look into."""
    for item in _functional_groups(ds, index, "PixelValueTransformationSequence"):
        return item
    return ds


def _functional_groups(ds: Dataset, index: int, macro: str) -> Iterator[Dataset]:
    """Items of ``macro`` for frame ``index``: per-frame first, then shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    groups = ([per_frame[index]] if index < len(per_frame) else []) + list(
        ds.get("SharedFunctionalGroupsSequence") or []
    )
    for group in groups:
        items = group.get(macro) or []
        if items:
            yield items[0]


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    """Row/column spacing in mm from PixelSpacing, ImagerPixelSpacing or the pixel measures."""
    sources = [ds, *_functional_groups(ds, 0, "PixelMeasuresSequence")]
    for item in sources:
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            try:
                row, col = (float(v) for v in item.get(keyword) or ())
            except (TypeError, ValueError):
                continue
            if all(math.isfinite(v) and v > 0 for v in (row, col)):
                return row, col
    return None


def _modality(ds: Dataset) -> str:
    value = str(ds.get("Modality") or "").strip().upper()
    return value if re.fullmatch(r"[A-Z0-9]{1,16}", value) else "OT"


# ---------------------------------------------------------------------------------------------
# De-identified header summary
# ---------------------------------------------------------------------------------------------

# Tags whose values identify a person, a place or a time; their values are also scrubbed
# out of any free text copied into the summary (series descriptions often repeat them).
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstanceCreationDate",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
)

# Dates, times with date, UIDs, long numbers and DICOM person names (with ^) in free text.
_IDENTIFIER_PATTERNS = re.compile(
    r"\b(?:19|20)\d{2}[-./]?[01]\d[-./]?[0-3]\d\b"  # dates
    r"|\b[0-3]?\d[-./][01]?\d[-./](?:19|20)?\d{2}\b"  # d/m/y dates
    r"|\d+(?:\.\d+){3,}"  # UIDs
    r"|\d{5,}"  # IDs, accession numbers
    r"|\S*\^\S*"  # Family^Given
)
REMOVED = "[removed]"


def _identifier_tokens(ds: Dataset) -> list[str]:
    """Identifier values of ``ds``, plus the parts of person names, longest first."""
    tokens: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:
        try:
            values = _as_list(ds.get(keyword))
        except Exception:  # an unparseable identifier value: nothing to scrub with it
            continue
        for value in values:
            tokens.add(str(value or "").strip())
            if isinstance(value, PersonName):  # "Doe^John" also appears as "John Doe"
                tokens.update(re.split(r"[\^\s=,]+", str(value)))
    return sorted((t for t in tokens if len(t) >= 3), key=len, reverse=True)


def _scrub(text: str, tokens: list[str]) -> str:
    for token in tokens:
        text = re.sub(re.escape(token), REMOVED, text, flags=re.IGNORECASE)
    return _IDENTIFIER_PATTERNS.sub(REMOVED, text).strip()


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def _number(value: object) -> float | int:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(value)
    return int(number) if number.is_integer() else round(number, 6)


def _numbers(value: object) -> float | int | list[float | int]:
    numbers = [_number(v) for v in _as_list(value)]
    return numbers[0] if len(numbers) == 1 else numbers


def _codes(value: object, tokens: list[str]) -> str | list[str]:
    codes = [str(v).strip() for v in _as_list(value)]
    if not all(re.fullmatch(r"[A-Za-z0-9_ -]{0,16}", c) for c in codes):
        raise ValueError(value)  # a code string holding anything else is not a code
    codes = [_scrub(c, tokens) for c in codes]
    return codes[0] if len(codes) == 1 else codes


def _text(value: object, tokens: list[str]) -> str:
    return _scrub(str(value), tokens)


# Whitelisted tags by kind: numbers stay numbers, code strings must look like codes, and every
# string is scrubbed of identifiers. A value its converter rejects is left out.
_NUMBER_TAGS = [
    "MagneticFieldStrength",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "FlipAngle",
    "EchoTrainLength",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "WindowCenter",
    "WindowWidth",
    "RescaleSlope",
    "RescaleIntercept",
    "KVP",
    "ImageOrientationPatient",
    "ImagePositionPatient",  # geometry in the scanner's frame (mm), not identifying
]
_CODE_TAGS = [
    "Modality",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "MRAcquisitionType",
    "ImageType",
    "PhotometricInterpretation",
    "BodyPartExamined",
    "ContrastBolusRoute",
    "RescaleType",
    "PatientPosition",
]
_TEXT_TAGS = [
    "Manufacturer",
    "ManufacturerModelName",
    "SeriesDescription",
    "ProtocolName",
    "ContrastBolusAgent",
]


def deidentified_summary(ds: Dataset) -> dict[str, object]:
    """A JSON-able whitelist of technical header values; no identifier survives.

    Only the tags listed above are copied. Free text is scrubbed of the dataset's own
    identifier values and of anything shaped like a date, UID, ID number or person name.
    """
    tokens = _identifier_tokens(ds)
    converters: dict[str, Callable[[object], object]] = {
        **dict.fromkeys(_NUMBER_TAGS, _numbers),
        **dict.fromkeys(_CODE_TAGS, partial(_codes, tokens=tokens)),
        **dict.fromkeys(_TEXT_TAGS, partial(_text, tokens=tokens)),
    }
    summary: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, convert in converters.items():
            try:
                value = ds.get(keyword)
                if value in (None, "") or (isinstance(value, list) and not value):
                    continue
                summary[keyword] = convert(value)
            except Exception:  # an invalid value (e.g. IS "1A") is simply not reported
                continue
        syntax = ds.get("file_meta", {}).get("TransferSyntaxUID")
        if syntax is not None and UID(syntax).is_transfer_syntax:
            summary["TransferSyntax"] = UID(syntax).name
    return {k: v for k, v in summary.items() if v not in ("", [])}


_KEY_SALT = os.urandom(16)  # per process: a key can be compared, never traced back to its UIDs
_SERIES_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID")


def series_key(path: str | os.PathLike) -> str | None:
    """An opaque key equal for files of one patient's series (salted hash of the patient ID and
    the study and series UIDs), to tell a mixed upload apart without keeping an identifier;
    ``None`` for a file that is not DICOM or names none of them."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_SERIES_TAGS))
    except Exception:  # not DICOM (a picture): no series to compare
        return None
    values = [str(ds.get(tag, "")) for tag in _SERIES_TAGS]
    if not any(values):
        return None
    return hashlib.sha256(_KEY_SALT + "\\".join(values).encode()).hexdigest()
