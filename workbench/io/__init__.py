"""Files to arrays: every reader returns an :class:`Image` or raises a one-line InputError.

The format is sniffed from the content (DICM magic, NIfTI header size, picture magic numbers,
a raw DICOM dataset's first tag, gzip), not trusted from the suffix, so a ``.dcm.gz``, a DICOM
without preamble or a PNG named ``.jpg`` all load. This package never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from workbench.io.archive import extract_zip
from workbench.io.dicom import dicom_from_bytes, read_dicom
from workbench.io.images import Image, read_picture
from workbench.io.limits import DEFAULT_LIMITS, Limits, read_bounded
from workbench.io.nifti import check_declared_size, is_nifti, load_nifti, nifti_image

__all__ = [
    "DEFAULT_LIMITS",
    "Image",
    "Limits",
    "describe",
    "extract_zip",
    "load_image",
    "load_nifti",
    "read_dicom",
]

_PICTURE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PICTURE_MAGIC += (b"GIF87a", b"GIF89a", b"BM")
# First group of a DICOM dataset written without preamble/file meta (little or big endian):
# file meta (0002), identifying (0008) or, in stripped files, patient (0010) / image (0028).
_RAW_DICOM_GROUPS = {b"\x02\x00", b"\x08\x00", b"\x00\x08", b"\x10\x00", b"\x28\x00"}
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima", ""}


def _is_dicom_file(data: bytes, suffix: str) -> bool:
    return data[128:132] == b"DICM"


def _is_picture(data: bytes, suffix: str) -> bool:
    return data.startswith(_PICTURE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _is_raw_dicom(data: bytes, suffix: str) -> bool:
    """A dataset without preamble (ACR-NEMA): first tag's group is a plausible one, or the
    name says DICOM; pydicom's parse then decides."""
    return data[:2] in _RAW_DICOM_GROUPS or suffix in _DICOM_SUFFIXES


@dataclass(frozen=True)
class Format:
    """One file format: how to recognise its bytes and how to read them."""

    name: str
    sniff: Callable[[bytes, str], bool]  # (gunzipped bytes, lower-case suffix) -> is it?
    read: Callable[..., Image]  # (bytes, source, *, all_frames, limits) -> Image


# Tried in order; the first whose sniff says yes reads the file.
FORMATS: tuple[Format, ...] = (
    Format("DICOM", _is_dicom_file, dicom_from_bytes),
    Format("NIfTI", lambda data, suffix: is_nifti(data), nifti_image),
    Format("picture", _is_picture, read_picture),
    Format("DICOM without preamble", _is_raw_dicom, dicom_from_bytes),
)


def _suffix(path: Path) -> str:
    """The suffix that names the content: ``.dcm`` for ``x.dcm.gz``."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def load_image(
    path: str | os.PathLike, *, all_frames: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Image:
    """Read any supported image file into an :class:`Image`.

    A multi-frame file gives its middle frame, or all frames as (F, H, W[, 3]) with
    ``all_frames=True`` (also (1, H, W) for a single frame, so callers need one code path).
    """
    path = Path(path)
    data = read_bounded(path, limits, partial(check_declared_size, source=path.name, limits=limits))
    suffix = _suffix(path)
    for fmt in FORMATS:
        if fmt.sniff(data, suffix):
            return fmt.read(data, path.name, all_frames=all_frames, limits=limits)
    # Pillow knows more formats (TGA, PPM, ICO...) than the magic numbers above: last word.
    return read_picture(data, path.name, all_frames=all_frames, limits=limits)


def describe(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> dict[str, object]:
    """What a file is, for ``python -m workbench inspect``: JSON-able and free of identifiers."""
    image = load_image(path, limits=limits)
    header = dict(image.header)
    fmt = header.pop("Format", "unknown")
    stored = header.pop("StoredDataType", "unknown")
    pixels = image.pixels
    return {
        "file": image.source,
        "format": fmt,
        "modality": image.modality,
        "shape": list(pixels.shape),
        "frames": image.frames,
        "stored_dtype": stored,
        "spacing_mm": list(image.spacing) if image.spacing else None,
        "value_range": [float(np.min(pixels)), float(np.max(pixels))],
        "header": header,
    }
