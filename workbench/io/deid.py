"""De-identify a DICOM dataset after the DICOM PS3.15 Basic Application Confidentiality Profile.

For the files the workbench ships (``examples/``): names, IDs, dates, addresses, institution,
device and operator are emptied (not deleted, so the files stay valid), private tags dropped,
and every instance UID replaced by one derived from it, so that files of one series still share
their series UID. Times (TM) are kept, as the profile's Retain Longitudinal Temporal Information
option allows: the perfusion reader orders time points by them.
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from workbench.io.dicom import IDENTIFYING_KEYWORDS

# The profile's attributes beyond the person names and dates that go by VR below.
EMPTIED_KEYWORDS = (
    *IDENTIFYING_KEYWORDS,
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "OtherPatientNames",
    "MilitaryRank",
    "StudyDescription",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
    "ReferencedStudySequence",
)
IDENTIFYING_VRS = ("PN", "DA", "DT")
METHOD = "DICOM PS3.15 Basic Profile; times retained"


def _new_uid(uid: str, salt: str) -> str:
    """Registered UIDs (SOP classes, transfer syntaxes) stay; instance UIDs map one to one."""
    if UID(uid).is_transfer_syntax or UID(uid).name != uid:
        return uid
    return generate_uid(entropy_srcs=[salt, uid])


def deidentify(ds: Dataset, salt: str) -> Dataset:
    """Apply the profile in place to ``ds`` (file meta included) and return it.

    ``salt`` makes the replacement UIDs of one run unguessable from the originals; use the same
    salt for every file of a series.
    """
    ds.remove_private_tags()
    identifying = {tag_for_keyword(k) for k in EMPTIED_KEYWORDS}

    def scrub(dataset: Dataset, element) -> None:
        if element.tag in identifying or element.VR in IDENTIFYING_VRS:
            element.value = [] if element.VR == "SQ" else ""
        elif element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            new = [_new_uid(str(v), salt) for v in values]
            element.value = new if element.VM > 1 else new[0]

    ds.walk(scrub)
    if "MediaStorageSOPInstanceUID" in getattr(ds, "file_meta", {}):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    return ds
