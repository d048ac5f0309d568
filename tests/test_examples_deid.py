"""The shipped examples carry no identifier: every DICOM in examples/ (also inside zips) is
de-identified after DICOM PS3.15's basic profile (issue 18 fault 9)."""

import io
import zipfile
from pathlib import Path

import pydicom

from workbench.io.deid import EMPTIED_KEYWORDS, IDENTIFYING_VRS, deidentify

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_dicoms() -> list[tuple[str, bytes]]:
    found = [(p.name, p.read_bytes()) for p in sorted(EXAMPLES.glob("*.dcm"))]
    for archive in sorted(EXAMPLES.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            found += [(f"{archive.name}/{n}", zf.read(n)) for n in zf.namelist() if ".dcm" in n]
    return found


def identifying_values(ds: pydicom.Dataset) -> list[str]:
    """Keywords of identifying attributes that hold a value, and private tags."""
    found = []

    def check(dataset, element) -> None:
        if element.tag.is_private:
            found.append(str(element.tag))
        elif element.value not in (None, "", []) and (
            element.keyword in EMPTIED_KEYWORDS or element.VR in IDENTIFYING_VRS
        ):
            found.append(element.keyword)

    ds.walk(check)
    return found


def test_every_example_dicom_is_deidentified():
    dicoms = example_dicoms()
    assert len(dicoms) > 200  # 3 slices, a 24-slice series, a 240-image DSC series
    offenders = {}
    for name, data in dicoms:
        ds = pydicom.dcmread(io.BytesIO(data))
        if identifying_values(ds) or ds.get("PatientIdentityRemoved") != "YES":
            offenders[name] = identifying_values(ds)
    assert offenders == {}


def test_deidentify_empties_what_a_real_file_identifies(shared_data):
    """On a real file with test identifiers (name, birth date, address, operator, UIDs)."""
    ds = pydicom.dcmread(shared_data / "dicom" / "dwv" / "bbmri-53323131.dcm")
    uids = {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}
    assert identifying_values(ds)  # the raw file does identify
    deidentify(ds, salt="test")
    assert identifying_values(ds) == []
    assert {ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID}.isdisjoint(uids)
    assert ds.SOPClassUID.name == "MR Image Storage"
