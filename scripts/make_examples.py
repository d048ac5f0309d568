"""Regenerate the app's example inputs in ``examples/`` from the phantom generator.

    python scripts/make_examples.py [task ...]

Examples are synthetic (no patient data) and small. Which files a task has is its TaskSpec's
``examples`` (``workbench.tasks``); the tasks are the registered ones, and a task whose examples
can be regenerated has a maker in ``MAKERS``, which must write exactly the files its spec lists
(the others' examples are kept as shipped). Every DICOM in ``examples/`` (also inside zips) is
then de-identified after DICOM PS3.15's basic profile, since the phantom writers fill in the IDs,
names and dates of the real layouts.
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


def tumor_seg(tmp: Path, out: Path) -> list[Path]:
    """Two slices with the largest tumours and one without, from patients never trained on,
    and a whole patient."""
    records = scan_kaggle_3m(write_dataset("tumor_seg", tmp / "lgg", n=2, seed=1234))
    areas = np.array([read_mask(r.mask).sum() for r in records])
    by_patient = {}
    for k in np.argsort(-areas):
        by_patient.setdefault(records[k].patient, k)
    big = list(by_patient.values())[:2]
    empty = next(k for k in range(len(records)) if areas[k] == 0 and records[k].index > 8)
    written = []
    for name, k in [
        ("tumor_seg_phantom_1.tif", big[0]),
        ("tumor_seg_phantom_2.tif", big[1]),
        ("tumor_seg_phantom_empty.tif", empty),
    ]:
        written.append(Path(shutil.copy(records[k].image, out / name)))
    # A whole patient, slices and masks, as a user zips a kaggle_3m folder.
    first = records[0].patient
    patient = out / "tumor_seg_phantom_patient.zip"
    with zipfile.ZipFile(patient, "w", zipfile.ZIP_DEFLATED) as z:
        for r in records:
            if r.patient == first:
                z.write(r.image, f"{first}/{r.image.name}")
                z.write(r.mask, f"{first}/{r.mask.name}")
    return [*written, patient]


def hemorrhage(tmp: Path, out: Path) -> list[Path]:
    """Three single CT slices and a zipped series in the RSNA layout."""
    return write_examples(out)


def perfusion(tmp: Path, out: Path) -> list[Path]:
    """A simulated stroke patient (64×64, 6 slices, 40 time points): its DSC series, zipped."""
    root = write_dataset("perfusion", tmp / "dsc", n=1, seed=7, shape=(6, 64, 64), n_times=40)
    archive = out / "perfusion_phantom.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for f in sorted((root / "patient_000" / "dsc").glob("*.dcm")):
            z.write(f, f.name)
    return [archive]


# The tasks whose examples this script regenerates (tmp folder, examples folder) -> files written.
MAKERS: dict[str, Callable[[Path, Path], list[Path]]] = {
    "tumor_seg": tumor_seg,
    "hemorrhage": hemorrhage,
    "perfusion": perfusion,
}


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


def main(tasks: list[str], out: Path = EXAMPLES) -> None:
    from workbench.errors import InputError
    from workbench.tasks import get_task, list_tasks

    try:
        specs = [get_task(name) for name in tasks] if tasks else list_tasks()
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    out.mkdir(exist_ok=True)
    for spec in specs:
        if spec.name not in MAKERS:
            print(f"{spec.name}: no maker; its examples are kept as shipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            written = sorted(p.name for p in MAKERS[spec.name](Path(tmp), out))
        if written != sorted(spec.examples):
            raise SystemExit(
                f"error: the {spec.name} maker wrote {written}, but the task's spec lists "
                f"{sorted(spec.examples)}; make them agree."
            )
        print(f"examples for {spec.name} written to {out}: {', '.join(written)}")
    deidentify_examples(out)
    print(f"DICOM examples in {out} de-identified")


if __name__ == "__main__":
    main(sys.argv[1:])
