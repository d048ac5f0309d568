"""Head CT with intracranial haemorrhages, written in the RSNA Intracranial Hemorrhage layout.

A procedural head (:func:`workbench.phantom.head.make_head`) gets each tissue's Hounsfield
units, a slightly brighter rim next to the skull (beam hardening), in-plane blur and correlated
noise. Each haemorrhage subtype is drawn where and as it really appears:

* epidural: a biconvex (lentiform) lens against the inner table, thick in its middle, limited in
  extent, on one side of the midline;
* subdural: a thin crescent along the inner table over a large part of one hemisphere;
* subarachnoid: blood replacing the CSF of the sulci, fissures or basal cisterns in a region;
* intraventricular: blood layering in the dependent (posterior) part of a lateral ventricle, or
  a cast filling it;
* intraparenchymal: a rounded, slightly irregular clot in the deep grey nuclei or a lobe, with a
  hypodense oedema rim.

Acute blood is 50–90 HU (less where it mixes with CSF). Several subtypes can occur in one head;
a slice is labelled with a subtype when it shows enough of it, and ``any`` is their union.
The slices are written as CT DICOM with the competition's tags and file names, including some
12-bit files whose values wrap (the quirk :func:`workbench.ct.fix_rsna_wrap` undoes).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from workbench.data.rsna import CSV_NAME, IMAGE_DIR, LABELS, SUBTYPES
from workbench.phantom.head import Head, Tissue, make_head, smooth_field

# Hounsfield-unit ranges per tissue; each head draws its own value in the range.
TISSUE_HU: dict[Tissue, tuple[float, float]] = {
    Tissue.BACKGROUND: (-1000.0, -1000.0),
    Tissue.SCALP_FAT: (-110.0, -90.0),
    Tissue.CSF: (0.0, 15.0),
    Tissue.GREY: (35.0, 45.0),
    Tissue.WHITE: (20.0, 30.0),
    Tissue.VENTRICLE: (0.0, 15.0),
    Tissue.VESSEL: (40.0, 60.0),
}
BONE_HU = (700.0, 2000.0)
ACUTE_BLOOD_HU = (50.0, 90.0)
MIN_PIXELS = 12  # a slice counts as showing a bleed from this many pixels of it on


@dataclass(frozen=True)
class Geometry:
    """What the bleed generators need to know about one head, computed once.

    In-plane axes come from the landmarks: left-right through the two atria, anterior-posterior
    from the foramen of Monro to the pineal region; their midpoint is on the midsagittal plane.
    """

    head: Head
    mm: tuple[np.ndarray, np.ndarray, np.ndarray]  # z, row, column coordinates in mm
    depth: np.ndarray  # mm from the inner table of the skull, inside the skull (0 outside)
    mid: np.ndarray  # (row, column) mm of a point on the midsagittal plane
    lr: np.ndarray  # unit (row, column) vector pointing to the right
    ap: np.ndarray  # unit (row, column) vector pointing backwards

    @classmethod
    def of(cls, head: Head) -> Geometry:
        nz, nh, nw = head.shape
        dz, dy, dx = head.spacing
        mm = (
            (np.arange(nz, dtype=np.float32) * dz)[:, None, None],
            (np.arange(nh, dtype=np.float32) * dy)[None, :, None],
            (np.arange(nw, dtype=np.float32) * dx)[None, None, :],
        )
        depth = ndimage.distance_transform_edt(head.intracranial, sampling=head.spacing)
        mark = {k: np.multiply(v, head.spacing)[1:] for k, v in head.landmarks.items()}
        lr = mark["atrium_right"] - mark["atrium_left"]
        lr /= np.linalg.norm(lr)
        ap = mark["pineal"] - mark["foramen_monro"]
        ap -= np.dot(ap, lr) * lr  # orthogonal to left-right within the slice
        ap /= np.linalg.norm(ap)
        mid = (mark["atrium_left"] + mark["atrium_right"]) / 2
        return cls(head, mm, depth.astype(np.float32), mid, lr, ap)

    def _along(self, axis: np.ndarray) -> np.ndarray:
        _, yy, xx = self.mm
        return (yy - self.mid[0]) * axis[0] + (xx - self.mid[1]) * axis[1]

    @property
    def side(self) -> np.ndarray:
        """Signed mm from the midsagittal plane (left < 0 < right)."""
        return self._along(self.lr)

    @property
    def posterior(self) -> np.ndarray:
        """Signed mm along the anterior → posterior axis."""
        return self._along(self.ap)

    def same_side(self, point: np.ndarray) -> np.ndarray:
        """Voxels on the side of the falx where ``point`` lies (extra-axial blood stops there)."""
        point_side = np.dot(point[1:] - self.mid, self.lr)
        return np.sign(self.side) == np.sign(point_side)

    def distance(self, point: np.ndarray) -> np.ndarray:
        """mm from ``point`` (z, row, column in mm) to every voxel."""
        zz, yy, xx = self.mm
        return np.sqrt((zz - point[0]) ** 2 + (yy - point[1]) ** 2 + (xx - point[2]) ** 2)

    def landmark(self, name: str) -> np.ndarray:
        return np.multiply(self.head.landmarks[name], self.head.spacing)

    def pick(self, rng: np.random.Generator, candidates: np.ndarray) -> np.ndarray | None:
        """A random voxel (z, row, column in mm) among ``candidates``; None when there is none."""
        idx = np.argwhere(candidates)
        if len(idx) == 0:
            return None
        return np.multiply(idx[rng.integers(len(idx))], self.head.spacing)


@dataclass(frozen=True)
class Bleed:
    """One haemorrhage: where it is and how dense; ``rim`` is the oedema around a clot."""

    kind: str
    mask: np.ndarray  # (Z, H, W) bool
    hu: float
    rim: np.ndarray | None = None


BleedMaker = Callable[[Geometry, np.random.Generator], Bleed | None]


def _supratentorial(geo: Geometry) -> np.ndarray:
    """Slices clearly above the skull base (the sella): where convexity collections are seen;
    lower, the fossae are too narrow and irregular for the profiles below."""
    base = geo.head.landmarks["sella"][0] - 1.0
    return (np.arange(geo.head.shape[0]) < base)[:, None, None]


def _convexity(geo: Geometry, rng: np.random.Generator, lateral: float) -> np.ndarray | None:
    """A point on the inner table over the cerebral convexity, at least ``lateral`` mm off the
    midline."""
    inner_table = geo.depth <= 1.5 * max(geo.head.spacing[1:])  # the outermost voxel ring
    rim = geo.head.intracranial & inner_table & (np.abs(geo.side) > lateral)
    return geo.pick(rng, rim & _supratentorial(geo))


def epidural(geo: Geometry, rng: np.random.Generator) -> Bleed | None:
    """Lentiform: thickness T at the centre, falling as 1 − (r/R)² to the edge of the lens."""
    centre = _convexity(geo, rng, lateral=25.0)
    if centre is None:
        return None
    radius, thick = rng.uniform(20.0, 34.0), rng.uniform(10.0, 20.0)
    r = geo.distance(centre)
    profile = thick * np.clip(1.0 - (r / radius) ** 2, 0.0, None)
    mask = geo.head.intracranial & (geo.depth < profile) & geo.same_side(centre)
    return Bleed("epidural", mask, rng.uniform(60.0, 90.0))


def subdural(geo: Geometry, rng: np.random.Generator) -> Bleed | None:
    """Crescent: a nearly even thin layer, 1 − (r/R)⁴, spread over much of a hemisphere."""
    centre = _convexity(geo, rng, lateral=15.0)
    if centre is None:
        return None
    radius, thick = rng.uniform(45.0, 75.0), rng.uniform(5.0, 14.0)
    r = geo.distance(centre)
    profile = thick * np.clip(1.0 - (r / radius) ** 4, 0.0, None)
    mask = geo.head.intracranial & (geo.depth < profile) & geo.same_side(centre)
    mask &= _supratentorial(geo)
    return Bleed("subdural", mask, rng.uniform(50.0, 85.0))


def subarachnoid(geo: Geometry, rng: np.random.Generator) -> Bleed | None:
    """Blood in the CSF of sulci, fissures and cisterns within a region round a site: the basal
    (suprasellar) or quadrigeminal cistern, or a random point of sulcal CSF."""
    head = geo.head
    csf = head.tissue(Tissue.CSF) & head.intracranial
    site = str(rng.choice(["sella", "pineal", "sulcal", "sulcal"]))
    sulcal = site == "sulcal"
    centre = geo.pick(rng, csf & (geo.depth > 4.0)) if sulcal else geo.landmark(site)
    if centre is None:
        return None
    mask = csf & (geo.distance(centre) < rng.uniform(25.0, 45.0))
    return Bleed("subarachnoid", mask, rng.uniform(45.0, 75.0))


def intraventricular(geo: Geometry, rng: np.random.Generator) -> Bleed | None:
    """Blood layering in the occipital horn and atrium (supine patient: posterior is down), or
    a cast filling the lateral ventricle round the atrium."""
    head = geo.head
    atrium = geo.landmark(str(rng.choice(["atrium_left", "atrium_right"])))
    near = head.tissue(Tissue.VENTRICLE) & (geo.distance(atrium) < rng.uniform(18.0, 35.0))
    if near.any() and rng.random() < 0.65:  # a fluid level: only the dependent part
        posterior = np.broadcast_to(geo.posterior, near.shape)
        near &= posterior > np.percentile(posterior[near], rng.uniform(20.0, 60.0))
    return Bleed("intraventricular", near, rng.uniform(50.0, 80.0))


def intraparenchymal(geo: Geometry, rng: np.random.Generator) -> Bleed | None:
    """A rounded clot (ellipsoid with an irregular edge) in the deep grey nuclei (hypertensive)
    or in a lobe, with a hypodense oedema rim."""
    head = geo.head
    parenchyma = head.tissue(Tissue.GREY, Tissue.WHITE) & head.intracranial
    deep = rng.random() < 0.5
    centre = geo.pick(rng, parenchyma & (geo.depth > (30.0 if deep else 15.0)))
    if centre is None:
        return None
    axes = rng.uniform(6.0, 17.0, 3)
    zz, yy, xx = geo.mm
    rho = np.sqrt(
        ((zz - centre[0]) / max(axes[0], head.spacing[0])) ** 2
        + ((yy - centre[1]) / axes[1]) ** 2
        + ((xx - centre[2]) / axes[2]) ** 2
    )
    edge = 0.12 * smooth_field(rng, head.shape, (2.0, 6.0, 6.0))
    clot = (rho + edge < 1.0) & parenchyma
    rim = ndimage.binary_dilation(clot, iterations=int(rng.integers(2, 6))) & parenchyma & ~clot
    return Bleed("intraparenchymal", clot, rng.uniform(55.0, 90.0), rim)


BLEEDS: dict[str, BleedMaker] = {
    "epidural": epidural,
    "intraparenchymal": intraparenchymal,
    "intraventricular": intraventricular,
    "subarachnoid": subarachnoid,
    "subdural": subdural,
}
# How often a head carries each subtype: balanced enough to learn from, epidural the rarest.
PREVALENCE: dict[str, float] = {
    "epidural": 0.3,
    "intraparenchymal": 0.35,
    "intraventricular": 0.35,
    "subarachnoid": 0.35,
    "subdural": 0.35,
}


@dataclass(frozen=True)
class CTStudy:
    """One synthetic head CT: HU volume, per-slice labels and each subtype's voxels."""

    hu: np.ndarray  # (Z, H, W) float32
    labels: np.ndarray  # (Z, 6) int8 in LABELS order (any first)
    masks: dict[str, np.ndarray]  # subtype → (Z, H, W) bool, only slices that count
    spacing: tuple[float, float, float]


def _tissue_hu(head: Head, rng: np.random.Generator) -> np.ndarray:
    """Each tissue's own value plus a faint texture; bone varies between 700 and 2000 HU."""
    hu = np.zeros(head.shape, dtype=np.float32)
    texture = smooth_field(rng, head.shape, (1.0, 4.0, 4.0))
    for tissue, (low, high) in TISSUE_HU.items():
        mask = head.labels == tissue
        hu[mask] = rng.uniform(low, high) + (0.0 if low == high else 1.5) * texture[mask]
    csf = rng.uniform(*TISSUE_HU[Tissue.CSF])  # one CSF density inside and outside ventricles
    hu[head.tissue(Tissue.CSF, Tissue.VENTRICLE)] = (
        csf + 1.5 * texture[head.tissue(Tissue.CSF, Tissue.VENTRICLE)]
    )
    bone = head.labels == Tissue.SKULL
    density = rng.uniform(1100.0, 1500.0) + 350.0 * smooth_field(rng, head.shape, (1.0, 8.0, 8.0))
    hu[bone] = np.clip(density[bone], *BONE_HU)
    return hu


def _acquire(hu: np.ndarray, geo: Geometry, rng: np.random.Generator) -> np.ndarray:
    """What the scanner adds: a bright rim inside the skull (beam hardening), in-plane blur
    (the reconstruction kernel) and noise correlated over about a pixel."""
    rim = rng.uniform(2.0, 6.0) * np.exp(-geo.depth / rng.uniform(4.0, 10.0))
    hu = hu + np.where(geo.head.intracranial, rim, 0.0).astype(np.float32)
    hu = ndimage.gaussian_filter(hu, (0.0, *(rng.uniform(0.5, 0.9),) * 2))
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape).astype(np.float32), (0, 0.7, 0.7))
    return hu + noise * (rng.uniform(2.0, 5.0) / noise.std())


def make_ct_study(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (24, 256, 256),
    spacing: tuple[float, float, float] = (5.0, 0.9, 0.9),
    prevalence: dict[str, float] | None = None,
) -> CTStudy:
    """Draw a head, its haemorrhages (each subtype with its ``prevalence``) and its CT."""
    head = make_head(rng, shape, spacing)
    geo = Geometry.of(head)
    hu = _tissue_hu(head, rng)
    labels = np.zeros((shape[0], len(LABELS)), dtype=np.int8)
    masks: dict[str, np.ndarray] = {}
    for kind, p in (PREVALENCE if prevalence is None else prevalence).items():
        bleed = BLEEDS[kind](geo, rng) if rng.random() < p else None
        if bleed is None:
            continue
        shown = bleed.mask.sum(axis=(1, 2)) >= MIN_PIXELS  # sub-threshold bits are not painted
        mask = bleed.mask & shown[:, None, None]
        if not mask.any():
            continue
        if bleed.rim is not None:
            hu[bleed.rim & shown[:, None, None]] -= rng.uniform(8.0, 15.0)
        hu[mask] = bleed.hu + 3.0 * smooth_field(rng, head.shape, (1.0, 3.0, 3.0))[mask]
        masks[kind] = mask
        labels[:, LABELS.index(kind)] = shown
    labels[:, 0] = labels[:, 1:].max(axis=1)
    return CTStudy(_acquire(hu, geo, rng), labels, masks, head.spacing)


# ---------------------------------------------------------------------------------------------
# RSNA layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """How a scanner stores HU: bits, signedness and rescale intercept (slope 1)."""

    bits_stored: int
    signed: bool
    intercept: float
    wraps: bool = False  # the RSNA quirk: HU mod 4096 stored with an intercept near 0

    def stored(self, hu: np.ndarray) -> np.ndarray:
        values = np.rint(hu)
        if self.wraps:  # the inverse of the competition's fix; its range floor is −1000 HU
            return np.mod(np.clip(values, -1000, 3095), 4096).astype(np.uint16)
        values = values - self.intercept
        if self.signed:
            low, high = -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
            return np.clip(values, low, high).astype(np.int16)
        return np.clip(values, 0, (1 << self.bits_stored) - 1).astype(np.uint16)


ENCODINGS: dict[str, tuple[Encoding, float]] = {  # name → (encoding, share of studies)
    "signed16": (Encoding(16, True, -1024.0), 0.45),
    "unsigned12": (Encoding(12, False, -1024.0), 0.40),
    "wrapped12": (Encoding(12, False, 1.0, wraps=True), 0.15),
}


def _hex_id(rng: np.random.Generator, used: set[str]) -> str:
    """A fresh ``ID_<9 hex digits>`` as the competition names images and patients."""
    while True:
        value = f"ID_{int(rng.integers(16**9)):09x}"
        if value not in used:
            used.add(value)
            return value


def slice_dataset(
    stored: np.ndarray,
    enc: Encoding,
    *,
    image_id: str,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    index: int,
    z: float,
    spacing: tuple[float, float, float],
) -> FileDataset:
    """A CT Image Storage dataset with the tags the competition's files carry."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[image_id])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(image_id, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    rows, cols = stored.shape
    ds.ImagePositionPatient = [
        round(-spacing[2] * cols / 2, 3),
        round(-spacing[1] * rows / 2, 3),
        round(z, 3),
    ]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing[1], spacing[2]]
    ds.SliceThickness = spacing[0]
    ds.KVP = 120
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = enc.bits_stored
    ds.HighBit = enc.bits_stored - 1
    ds.PixelRepresentation = int(enc.signed)
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    ds.RescaleIntercept = enc.intercept
    ds.RescaleSlope = 1
    ds.PixelData = stored.tobytes()
    return ds


def _label_rows(image_id: str, labels: np.ndarray) -> list[tuple[str, int]]:
    """The six CSV rows of an image, in the competition's order (subtypes, then any)."""
    values = dict(zip(LABELS, labels.tolist(), strict=True))
    return [(f"{image_id}_{name}", values[name]) for name in (*SUBTYPES, "any")]


def _pick_encoding(rng: np.random.Generator) -> Encoding:
    names = list(ENCODINGS)
    shares = np.array([ENCODINGS[k][1] for k in names])
    return ENCODINGS[names[rng.choice(len(names), p=shares / shares.sum())]][0]


def write_study(
    study: CTStudy, folder: Path, rng: np.random.Generator, used: set[str]
) -> list[str]:
    """One patient's series as ``folder/ID_<image>.dcm`` files (one scanner encoding, z
    descending from the top slice); returns the image IDs in slice order."""
    enc = _pick_encoding(rng)
    patient, study_uid, series_uid = (_hex_id(rng, used) for _ in range(3))
    z_top = rng.uniform(80.0, 200.0)
    ids = []
    for k, hu in enumerate(study.hu):
        image_id = _hex_id(rng, used)
        ds = slice_dataset(
            enc.stored(hu),
            enc,
            image_id=image_id,
            patient_id=patient,
            study_uid=generate_uid(entropy_srcs=[study_uid]),
            series_uid=generate_uid(entropy_srcs=[series_uid]),
            index=k,
            z=z_top - k * study.spacing[0],
            spacing=study.spacing,
        )
        ds.save_as(Path(folder) / f"{image_id}.dcm", enforce_file_format=True)
        ids.append(image_id)
    return ids


def write_rsna(
    out: Path,
    n: int = 10,
    seed: int = 0,
    shape: tuple[int, int, int] = (24, 256, 256),
    spacing: tuple[float, float, float] = (5.0, 0.9, 0.9),
    prevalence: dict[str, float] | None = None,
) -> Path:
    """``n`` synthetic patients in the RSNA layout: ``stage_2_train.csv`` (with a few duplicated
    rows, as in the released file) and ``stage_2_train/ID_<image>.dcm``. ``prevalence``: the
    share of heads with each subtype (default :data:`PREVALENCE`)."""
    out = Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    used: set[str] = set()
    rows: list[tuple[str, int]] = []
    for _ in range(n):
        study = make_ct_study(rng, shape, spacing, prevalence)
        ids = write_study(study, out / IMAGE_DIR, rng, used)
        for image_id, labels in zip(ids, study.labels, strict=True):
            image_rows = _label_rows(image_id, labels)
            rows += image_rows + (image_rows if rng.random() < 0.02 else [])
    with open(out / CSV_NAME, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "Label"])
        writer.writerows(rows)
    return out


def write_examples(out: Path, seed: int = 5) -> list[Path]:
    """The app's examples: single slices showing a subdural and an intraventricular bleed, a
    normal slice, and a zip of a whole series with several subtypes (shuffled file names, as a
    real export). ``python -c "from workbench.phantom.ct import write_examples;
    write_examples('examples')"`` regenerates them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for kind in ("subdural", "intraventricular"):
        study = make_ct_study(rng, prevalence={kind: 1.0})
        k = int(np.argmax(study.masks[kind].sum(axis=(1, 2))))
        written.append(_single_slice(study, k, out / f"hemorrhage_phantom_{kind}.dcm", rng))
    study = make_ct_study(rng, prevalence={})
    written.append(_single_slice(study, 12, out / "hemorrhage_phantom_normal.dcm", rng))
    study = make_ct_study(rng, prevalence={"subdural": 1.0, "intraparenchymal": 1.0})
    with tempfile.TemporaryDirectory() as tmp:
        ids = write_study(study, Path(tmp), rng, set())
        archive = out / "hemorrhage_phantom_series.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for image_id in sorted(ids):
                zf.write(Path(tmp) / f"{image_id}.dcm", f"series/{image_id}.dcm")
    return [*written, archive]


def _single_slice(study: CTStudy, k: int, path: Path, rng: np.random.Generator) -> Path:
    one = CTStudy(study.hu[k : k + 1], study.labels[k : k + 1], {}, study.spacing)
    with tempfile.TemporaryDirectory() as tmp:
        (image_id,) = write_study(one, Path(tmp), rng, set())
        shutil.move(Path(tmp) / f"{image_id}.dcm", path)
    return path
