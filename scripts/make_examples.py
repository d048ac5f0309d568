"""Regenerate the app's example inputs in ``examples/`` from the phantom generator.

    python scripts/make_examples.py [task ...]

Examples are synthetic (no patient data) and small; each task adds a maker to ``MAKERS``. Every
DICOM in ``examples/`` (also inside zips) is then de-identified after DICOM PS3.15's basic
profile, since the phantom writers fill in the IDs, names and dates of the real layouts.
"""

from __future__ import annotations

import io
import secrets
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom

from workbench.data.lgg import read_mask, scan_kaggle_3m
from workbench.io.deid import deidentify
from workbench.phantom import write_dataset
from workbench.phantom.ct import write_examples

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tumor_seg(tmp: Path) -> None:
    """Two slices with the largest tumours and one without, from patients never trained on."""
    records = scan_kaggle_3m(write_dataset("tumor_seg", tmp / "lgg", n=2, seed=1234))
    areas = np.array([read_mask(r.mask).sum() for r in records])
    by_patient = {}
    for k in np.argsort(-areas):
        by_patient.setdefault(records[k].patient, k)
    big = list(by_patient.values())[:2]
    empty = next(k for k in range(len(records)) if areas[k] == 0 and records[k].index > 8)
    for name, k in [
        ("tumor_seg_phantom_1.tif", big[0]),
        ("tumor_seg_phantom_2.tif", big[1]),
        ("tumor_seg_phantom_empty.tif", empty),
    ]:
        shutil.copy(records[k].image, EXAMPLES / name)
    # A whole patient, slices and masks, as a user zips a kaggle_3m folder.
    first = records[0].patient
    with zipfile.ZipFile(
        EXAMPLES / "tumor_seg_phantom_patient.zip", "w", zipfile.ZIP_DEFLATED
    ) as z:
        for r in records:
            if r.patient == first:
                z.write(r.image, f"{first}/{r.image.name}")
                z.write(r.mask, f"{first}/{r.mask.name}")


def hemorrhage(tmp: Path) -> None:
    """Three single CT slices and a zipped series in the RSNA layout."""
    write_examples(EXAMPLES)


MAKERS: dict[str, Callable[[Path], None]] = {"tumor_seg": tumor_seg, "hemorrhage": hemorrhage}


def _clean(data: bytes, salt: str) -> bytes:
    """One DICOM file's bytes, de-identified."""
    out = io.BytesIO()
    deidentify(pydicom.dcmread(io.BytesIO(data)), salt).save_as(out, enforce_file_format=True)
    return out.getvalue()


def deidentify_examples(folder: Path = EXAMPLES) -> None:
    """Rewrite every ``.dcm`` and every DICOM in a ``.zip`` of ``folder`` de-identified."""
    salt = secrets.token_hex(16)  # one per run: a zipped series keeps one series UID
    for path in sorted(folder.glob("*.dcm")):
        path.write_bytes(_clean(path.read_bytes(), salt))
    for path in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(path) as zf:
            members = [(info, zf.read(info)) for info in zf.infolist()]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for info, data in members:
                is_dicom = info.filename.lower().endswith(".dcm")
                zf.writestr(info.filename, _clean(data, salt) if is_dicom else data)


def main(tasks: list[str]) -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for task in tasks or list(MAKERS):
        with tempfile.TemporaryDirectory() as tmp:
            MAKERS[task](Path(tmp))
        print(f"examples for {task} written to {EXAMPLES}")
    deidentify_examples()
    print(f"DICOM examples in {EXAMPLES} de-identified")


if __name__ == "__main__":
    main(sys.argv[1:])
