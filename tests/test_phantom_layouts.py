"""The phantom writers reproduce each real dataset's on-disk layout."""

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.errors import InputError
from workbench.phantom import phantom_writers, write_dataset
from workbench.phantom.layouts import LGG_COLUMNS, tumor44_classes

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "datasets"
PATIENT = re.compile(r"TCGA_[A-Z]{2}_\d{4}_\d{8}")


@pytest.fixture(scope="module")
def lgg(tmp_path_factory):
    return write_dataset("tumor_seg", tmp_path_factory.mktemp("lgg"), 2, seed=3, slices=(20, 24))


def test_kaggle_3m_layout(lgg):
    assert lgg.name == "kaggle_3m"
    patients = sorted(p for p in lgg.iterdir() if p.is_dir())
    assert len(patients) == 2 and all(PATIENT.fullmatch(p.name) for p in patients)
    with open(lgg / "data.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(LGG_COLUMNS)
    assert sorted(r["Patient"] for r in rows) == sorted(p.name.rsplit("_", 1)[0] for p in patients)
    for patient in patients:
        images = [p for p in patient.glob("*.tif") if not p.stem.endswith("_mask")]
        numbers = sorted(int(p.stem.rsplit("_", 1)[1]) for p in images)
        assert numbers == list(range(1, len(images) + 1)) and 20 <= len(images) <= 24
        for n in numbers:
            assert (patient / f"{patient.name}_{n}_mask.tif").exists()
        rgb = np.asarray(Image.open(images[0]))
        assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8


def _volume(patient: Path):
    n = len(list(patient.glob("*_mask.tif")))
    rgb = np.stack(
        [np.asarray(Image.open(patient / f"{patient.name}_{k}.tif")) for k in range(1, n + 1)]
    )
    mask = np.stack(
        [np.asarray(Image.open(patient / f"{patient.name}_{k}_mask.tif")) for k in range(1, n + 1)]
    )
    return rgb, mask


def test_kaggle_3m_masks_mark_the_flair_abnormality_in_consecutive_slices(lgg):
    for patient in sorted(p for p in lgg.iterdir() if p.is_dir()):
        rgb, mask = _volume(patient)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        with_tumour = np.flatnonzero(mask.any((1, 2)))
        assert 0 < len(with_tumour) < len(mask)  # many slices without tumour, as real
        assert np.array_equal(with_tumour, np.arange(with_tumour[0], with_tumour[-1] + 1))
        flair = rgb[..., 1].astype(float)
        inside = mask > 0
        brain = (flair > 20) & ~inside
        assert flair[inside].mean() > 1.3 * flair[brain].mean()  # the abnormality is FLAIR-bright


def test_writers_are_deterministic_per_seed(lgg, tmp_path):
    again = write_dataset("tumor_seg", tmp_path / "a", 1, seed=3, slices=(20, 24))
    first = sorted(p for p in lgg.iterdir() if p.is_dir())[0]
    twin = again / first.name
    assert twin.is_dir()
    rgb, mask = _volume(first)
    rgb2, mask2 = _volume(twin)
    assert np.array_equal(rgb, rgb2) and np.array_equal(mask, mask2)
    other = write_dataset("tumor_seg", tmp_path / "b", 1, seed=4, slices=(20, 24))
    assert not (other / first.name).exists()


def test_contrast_layout(tmp_path):
    root = write_dataset("contrast", tmp_path, 2, seed=0, size=96)
    assert sorted(p.name for p in root.iterdir()) == ["T1 post", "T1 pre", "T2", "T2 FLAIR post"]
    for folder in root.iterdir():
        files = sorted(folder.glob("*.png"))
        assert len(files) == 2
        image = Image.open(files[0])
        assert image.mode == "L" and np.asarray(image).max() > 100


def test_tumor_detect_layout(tmp_path):
    root = write_dataset("tumor_detect", tmp_path, 2, seed=0, size=96, test_fraction=0.5)
    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    for split, tag in (("Training", "Tr"), ("Testing", "Te")):
        assert sorted(p.name for p in (root / split).iterdir()) == classes
        for name in classes:
            (file,) = (root / split / name).glob("*.jpg")
            assert re.fullmatch(rf"{tag}-{name[:2]}_\d{{4}}\.jpg", file.name)
            assert Image.open(file).mode == "RGB"


def test_tumor44_layout_matches_the_real_folder_names(tmp_path):
    classes = tumor44_classes()
    assert len(classes) == 44 and "_NORMAL T2" in classes and "_NORMAL T1C+" not in classes
    if (REAL / "brain_tumor_mri_44c").is_dir():
        assert classes == sorted(p.name for p in (REAL / "brain_tumor_mri_44c").iterdir())
    root = write_dataset("tumor44", tmp_path, 1, seed=0, size=64)
    assert sorted(p.name for p in root.iterdir()) == classes
    suffixes = {f.suffix for f in root.rglob("*") if f.is_file()}
    assert suffixes <= {".jpg", ".jpeg", ".png", ".webp", ".JPG"} and len(suffixes) > 1
    for file in root.rglob("*.*"):
        with Image.open(file) as image:
            assert 180 <= image.width <= 320 and 180 <= image.height <= 320


def test_unknown_task_or_empty_set_is_refused(tmp_path):
    assert {"tumor_seg", "contrast", "tumor_detect", "tumor44"} <= set(phantom_writers())
    with pytest.raises(InputError, match="No phantom"):
        write_dataset("banana", tmp_path, 1)
    with pytest.raises(InputError, match="at least 1"):
        write_dataset("contrast", tmp_path, 0)
