"""Sagittal and coronal planes of LGG patients (workbench.data.planes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data.folders import get_label_map, scan_dataset
from workbench.data.lgg import read_mask, scan_kaggle_3m
from workbench.data.planes import planes, write_planes
from workbench.io import load_image

PATIENTS = ("TCGA_CS_4941_19960909", "TCGA_HT_7602_19951103")


def head_volume(slices: int = 24, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid head whose brightness rises from inferior to superior, and a cubic lesion
    in its right anterior quadrant (low columns, low rows) in the upper slices."""
    z, y, x = np.mgrid[:slices, :size, :size]
    head = ((z - slices / 2) / (slices / 2)) ** 2 + ((y - size / 2) / (size / 2.5)) ** 2
    head = head + ((x - size / 2) / (size / 2.5)) ** 2 <= 1
    grey = np.where(head, 60 + 150 * z / slices, 0).astype(np.uint8)
    mask = np.zeros(head.shape, bool)
    mask[14:20, 16:24, 16:24] = True
    return np.repeat(grey[..., None], 3, axis=-1), mask


def test_planes_are_labelled_by_the_resliced_mask_and_shown_superior_up() -> None:
    image, mask = head_volume()
    found = list(planes(image, mask, step=1, rng=np.random.default_rng(0)))
    sagittal, coronal = found[: len(found) // 2], found[len(found) // 2 :]
    assert len(sagittal) > 10 and len(coronal) > 10
    with_lesion = [outline.any() for _, outline in found]
    # 8 lesion columns and 8 lesion rows of the 64 cut through it; planes with little head skipped
    assert 12 <= sum(with_lesion) <= 16
    for picture, outline in found:
        assert picture.shape == (64, 64, 3) and outline.shape == (64, 64)
        rows = np.flatnonzero(picture[..., 0].any(axis=1))
        top, bottom = picture[rows[1], :, 0], picture[rows[-2], :, 0]
        assert top[top > 0].mean() > bottom[bottom > 0].mean()  # superior (bright) on top
        if outline.any():  # the lesion is in the upper slices: the upper half of the frame
            assert np.flatnonzero(outline.any(axis=1)).mean() < 32


def test_real_patients_planes_read_as_kaggle_3m_with_detection_labels(
    shared_data: Path, tmp_path: Path
) -> None:
    """Two real LGG patients in, the same layout out: the detection label map reads it."""
    source = tmp_path / "kaggle_3m"
    source.mkdir()
    for patient in PATIENTS:
        (source / patient).symlink_to(shared_data / "datasets/lgg_kaggle_3m/kaggle_3m" / patient)
    written = write_planes(source, tmp_path / "planes", step=16)
    records = scan_kaggle_3m(tmp_path / "planes")
    assert len(records) == written > 0
    assert {r.patient for r in records} == set(PATIENTS)
    labels = [bool(read_mask(r.mask).any()) for r in records]
    assert any(labels) and not all(labels)
    samples = scan_dataset(tmp_path / "planes", get_label_map("tumor_detect"))
    assert {s.label for s in samples} == {"tumor", "no_tumor"}
    assert all(s.group for s in samples)  # grouped by patient, so splits keep patients whole
    assert load_image(records[0].image).pixels.shape == (256, 256, 3)
