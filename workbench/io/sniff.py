"""Is a file DICOM? Decided by content, as PACS and CD exports carry no extension."""

from __future__ import annotations

import os

import pydicom
from pydicom.misc import is_dicom as has_dicm_preamble


def is_dicom(path: str | os.PathLike) -> bool:
    """The DICM magic at byte 128, or else a dataset pydicom reads with an image's Rows tag
    (files written without preamble)."""
    if has_dicm_preamble(path):
        return True
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # any parse failure means "not DICOM"
        return False
    return "Rows" in dataset
