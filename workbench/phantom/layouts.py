"""Writers of phantom datasets in the exact on-disk layout of each real dataset, so that the real
loaders read them unchanged. Every writer is deterministic per seed: subject ``i`` draws from
``np.random.default_rng([seed, i])``, so a larger ``n`` extends a smaller one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.io.layouts import TYPES_44
from workbench.phantom.head import Head, make_head
from workbench.phantom.mr import mr_images
from workbench.phantom.tumor import Tumor, make_tumor


def full_stack(rng: np.random.Generator, size: int = 256) -> Head:
    """A head on a stack tall enough to reach the sella, the cerebellopontine angles and the
    fourth ventricle, ``size`` pixels square over a 230 mm field of view."""
    return make_head(rng, (30, size, size), (4.5, 230.0 / size, 230.0 / size))


def _subjects(seed: int, n: int) -> Iterator[np.random.Generator]:
    for i in range(n):
        yield np.random.default_rng([seed, i])


def to_uint8(volume: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Window a volume to 8 bits as scanners' exports do: 0 to the 99.5th percentile of the
    ``reference`` voxels (the brain) or of the whole volume."""
    values = volume[reference] if reference is not None and reference.any() else volume
    top = float(np.percentile(values, 99.5)) or 1.0
    return np.clip(volume / top * 255.0, 0, 255).astype(np.uint8)


def _slices_with(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of slices whose mask area is at least ``fraction`` of the largest one's."""
    area = mask.sum(axis=(1, 2))
    return np.flatnonzero(area >= max(1, fraction * area.max()))


def _render_slice(
    head: Head, tumor: Tumor | None, k: int, sequences: list[str], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """8-bit images of slice ``k`` (rendered on a 3-slice slab: cheap, and the field is 3D)."""
    lo, hi = max(k - 1, 0), min(k + 2, head.shape[0])
    slab = head.slab(lo, hi)
    images = mr_images(
        slab, sequences, rng, tumor.slab(lo, hi) if tumor else None, snr=rng.uniform(15, 40)
    )
    return {s: to_uint8(im, slab.brain_mask)[k - lo] for s, im in images.items()}


# --- LGG segmentation, Buda et al. (kaggle_3m) -------------------------------------------------

LGG_COLUMNS = (
    "Patient",
    "RNASeqCluster",
    "MethylationCluster",
    "miRNACluster",
    "CNCluster",
    "RPPACluster",
    "OncosignCluster",
    "COCCluster",
    "histological_type",
    "neoplasm_histologic_grade",
    "tumor_tissue_site",
    "laterality",
    "tumor_location",
    "gender",
    "age_at_initial_pathologic",
    "race",
    "ethnicity",
    "death01",
)
LGG_KINDS = ("astrocytoma", "oligodendroglioma", "glioma")


def _lgg_row(patient: str, kind: str, rng: np.random.Generator) -> dict[str, object]:
    """Clinical columns with synthetic values in the real file's codes (site code "PH")."""
    row: dict[str, object] = {c: int(rng.integers(1, 5)) for c in LGG_COLUMNS[1:8]}
    row.update(
        Patient=patient,
        histological_type={"astrocytoma": 1, "oligodendroglioma": 2}.get(kind, 3),
        neoplasm_histologic_grade=int(rng.integers(1, 3)),
        tumor_tissue_site=1,
        laterality=int(rng.integers(1, 4)),
        tumor_location=int(rng.integers(1, 7)),
        gender=int(rng.integers(1, 3)),
        age_at_initial_pathologic=int(rng.integers(20, 76)),
        race=int(rng.integers(1, 4)),
        ethnicity=int(rng.integers(1, 3)),
        death01=int(rng.integers(0, 2)),
    )
    return row


def write_kaggle_3m(out: Path, n: int, seed: int = 0, slices: tuple[int, int] = (20, 40)) -> Path:
    """``out/kaggle_3m/<TCGA_PH_XXXX_YYYYMMDD>/<id>_<i>.tif`` (RGB: pre-contrast T1, FLAIR,
    post-contrast T1) with ``<id>_<i>_mask.tif`` (0/255: the FLAIR abnormality, as the LGG
    masks were drawn) and ``data.csv``. ``slices``: range of the number of slices per patient."""
    root = Path(out) / "kaggle_3m"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, rng in enumerate(_subjects(seed, n)):
        nz = int(rng.integers(slices[0], slices[1] + 1))
        head = make_head(rng, (nz, 256, 256), (rng.uniform(120.0, 140.0) / nz, 0.9, 0.9))
        kind = str(rng.choice(LGG_KINDS))
        tumor = make_tumor(head, rng, kind)
        date = f"{rng.integers(1990, 2012)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        patient = f"TCGA_PH_{1000 + (seed * 1000 + i) % 9000:04d}_{date}"
        folder = root / patient
        folder.mkdir(exist_ok=True)
        images = mr_images(head, ["T1", "FLAIR", "T1C"], rng, tumor, snr=rng.uniform(15, 40))
        rgb = np.stack(
            [to_uint8(images[s], head.brain_mask) for s in ("T1", "FLAIR", "T1C")], axis=-1
        )
        mask = tumor.flair_mask.astype(np.uint8) * 255
        for k in range(nz):
            Image.fromarray(rgb[k]).save(folder / f"{patient}_{k + 1}.tif")
            Image.fromarray(mask[k]).save(folder / f"{patient}_{k + 1}_mask.tif")
        rows.append(_lgg_row(patient.rsplit("_", 1)[0], kind, rng))
    with open(root / "data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LGG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


# --- MR contrast -------------------------------------------------------------------------------

CONTRAST_CLASSES = {"T1 pre": "T1", "T1 post": "T1C", "T2": "T2", "T2 FLAIR post": "FLAIRC"}


def write_contrast(out: Path, n: int, seed: int = 0, size: int = 256) -> Path:
    """``out/<class>/<subject>.png`` for the study's four classes, one random slice per subject
    and class; half the subjects have a tumour."""
    root = Path(out)
    for i, rng in enumerate(_subjects(seed, n)):
        head = full_stack(rng, size)
        tumor = make_tumor(head, rng) if rng.random() < 0.5 else None
        candidates = _slices_with(head.brain_mask, 0.3)
        for name, sequence in CONTRAST_CLASSES.items():
            k = int(rng.choice(candidates))
            image = _render_slice(head, tumor, k, [sequence], rng)[sequence]
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / name / f"phantom_{seed}_{i:04d}.png")
    return root


# --- tumour detection (Kaggle Brain Tumor MRI Dataset) -----------------------------------------

DETECT_CLASSES = {"glioma": "gl", "meningioma": "me", "notumor": "no", "pituitary": "pi"}


def _tumor_slice(head: Head, tumor: Tumor | None, rng: np.random.Generator) -> int:
    mask = tumor.mask if tumor is not None else head.brain_mask
    return int(rng.choice(_slices_with(mask, 0.4 if tumor is not None else 0.5)))


def write_tumor_detect(
    out: Path, n: int, seed: int = 0, test_fraction: float = 0.25, size: int = 256
) -> Path:
    """``out/{Training,Testing}/{glioma,meningioma,notumor,pituitary}/{Tr,Te}-<xx>_<i>.jpg``:
    ``n`` subjects per class, one slice each (T1C, T1 or T2), split by subject."""
    root = Path(out)
    n_test = round(n * test_fraction)
    for c, (name, prefix) in enumerate(DETECT_CLASSES.items()):
        for i, rng in enumerate(_subjects(seed * 10 + c, n)):
            head = full_stack(rng, size)
            tumor = None if name == "notumor" else make_tumor(head, rng, name)
            sequence = str(rng.choice(["T1C", "T1C", "T1", "T2"]))
            image = _render_slice(head, tumor, _tumor_slice(head, tumor, rng), [sequence], rng)[
                sequence
            ]
            split, tag = ("Testing", "Te") if i < n_test else ("Training", "Tr")
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            side = int(rng.choice([224, 256, 320]))
            rgb = Image.fromarray(image).convert("RGB").resize((side, side), Image.BILINEAR)
            rgb.save(folder / f"{tag}-{prefix}_{i:04d}.jpg", quality=90)
    return root


# --- 44 classes (Kaggle Brain Tumor MRI Images 44 Classes) -------------------------------------

# Folder → the phantom lesion drawn for it (a carcinoma folder holds brain metastases).
TUMOR44_TYPES = {**TYPES_44, "Carcinoma": "metastasis", "_NORMAL": None}
TUMOR44_CONTRASTS = {"T1": "T1", "T1C+": "T1C", "T2": "T2"}
TUMOR44_FORMATS = (".jpg", ".jpeg", ".png", ".webp", ".JPG")


def tumor44_classes() -> list[str]:
    """The 44 folder names: 14 types × (T1, T1C+, T2) and normal T1 and T2."""
    return sorted(
        f"{t} {c}"
        for t, kind in TUMOR44_TYPES.items()
        for c in TUMOR44_CONTRASTS
        if kind or c != "T1C+"
    )


def write_tumor44(out: Path, n: int, seed: int = 0, size: int = 256) -> Path:
    """``out/<Type> <contrast>/<name>.<ext>``: ``n`` subjects per type, each giving one slice
    through the tumour per contrast; mixed sizes and formats as the real collection."""
    root = Path(out)
    for t, (folder, kind) in enumerate(TUMOR44_TYPES.items()):
        contrasts = {c: s for c, s in TUMOR44_CONTRASTS.items() if kind or c != "T1C+"}
        for i, rng in enumerate(_subjects(seed * 100 + t, n)):
            head = full_stack(rng, size)
            tumor = make_tumor(head, rng, kind) if kind else None
            k = _tumor_slice(head, tumor, rng)
            images = _render_slice(head, tumor, k, list(contrasts.values()), rng)
            for contrast, sequence in contrasts.items():
                target = root / f"{folder} {contrast}"
                target.mkdir(parents=True, exist_ok=True)
                w, h = (int(v) for v in rng.integers(180, 321, 2))
                picture = Image.fromarray(images[sequence]).resize((w, h), Image.BILINEAR)
                ext = str(rng.choice(TUMOR44_FORMATS))
                picture.save(target / f"phantom_{seed}_{i:04d}{ext}", format=_FORMAT[ext.lower()])
    return root


_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
