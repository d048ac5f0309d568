"""Segmentation on the real LGG patients (``../shared/data``) and its volume post-processing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.data.lgg import LGGSlices, scan_kaggle_3m
from workbench.recipes.tumor_seg import SegOptions, choose_min_voxels, postprocess, score, train
from workbench.training import TrainConfig
from workbench.transforms.mask import drop_small_components
from workbench.transforms.mr import Preprocess


def test_drop_small_components_counts_voxels_through_the_volume() -> None:
    mask = np.zeros((3, 8, 8), bool)
    mask[0:3, 1:3, 1:3] = True  # 12 voxels, touching across slices: one component
    mask[1, 6, 6] = True  # 1 voxel
    mask[2, 5:7, 0] = True  # 2 voxels
    kept = drop_small_components(mask, 2)
    assert kept.sum() == 14 and not kept[1, 6, 6] and kept[2, 5:7, 0].all()
    assert drop_small_components(mask, 13).sum() == 0
    assert (drop_small_components(mask, 0) == mask).all()
    # Diagonal neighbours in 3D belong to one component (26-connectivity).
    diagonal = np.zeros((2, 2, 2), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = True
    assert drop_small_components(diagonal, 2).sum() == 2


def test_postprocess_works_per_patient_and_the_score_rules() -> None:
    class Rec:
        def __init__(self, patient: str) -> None:
            self.patient = patient

    records = [Rec("a"), Rec("a"), Rec("b")]
    true = np.zeros((3, 4, 4), bool)
    true[0, :2, :2] = True  # 4 px tumour in patient a, slice 0
    pred = true.copy()
    pred[2, 3, 3] = True  # a 1-px speck on patient b's empty slice
    cleaned = postprocess(pred, records, 2)
    assert cleaned[0].sum() == 4 and not cleaned[2].any()
    raw = score(pred, true, records)
    # Per tumour slice: only slice 0 (Dice 1). Per slice also counts the speck (Dice 0).
    assert raw["per_tumour_slice"]["dice"].mean == pytest.approx(1.0)
    assert raw["per_slice"]["dice"].mean == pytest.approx(0.5)
    assert raw["empty_agree"] == 1
    after = score(cleaned, true, records)
    assert after["per_slice"]["dice"].mean == pytest.approx(1.0)


@pytest.fixture(scope="module")
def lgg_real(shared_data: Path) -> Path:
    return shared_data / "datasets" / "lgg_kaggle_3m" / "kaggle_3m"


def test_small_real_training_beats_the_empty_mask_on_held_out_patients(
    lgg_real: Path, tmp_path: Path
) -> None:
    opts = SegOptions(size=128, folds=1, val_fraction=0.25, empty_ratio=0.3, max_patients=10)
    cfg = TrainConfig(
        epochs=8, batch_size=8, lr=1e-3, monitor="val_dice", mode="max", progress=False
    )
    report = train(lgg_real, tmp_path / "seg", opts, cfg)
    fold = report["folds"][0]
    # The empty-mask baseline scores Dice 0 on every held-out patient (each has a tumour).
    assert fold["per_patient"]["dice"].mean > 0.2, fold["per_patient"]
    split = json.loads((tmp_path / "seg" / "split.json").read_text())
    assert not set(split["test_patients"]) & set(split["val_patients"])
    assert fold["patients"] == len(split["test_patients"])
    config = json.loads((tmp_path / "seg" / "config.json").read_text())
    assert config["postprocess"]["min_component_voxels"] in (0, 10, 25, 50, 100, 200, 400, 800)
    assert (tmp_path / "seg" / "failures.png").is_file()


def test_speck_threshold_is_chosen_on_the_data_given(lgg_real: Path) -> None:
    """On a patient's empty slices, a model that marks one pixel on each scores best once the
    speck filter is larger than that column of pixels."""
    import torch

    records = [r for r in scan_kaggle_3m(lgg_real) if r.patient == "TCGA_CS_4941_19960909"]
    data = LGGSlices(records[:10], Preprocess(size=(32, 32), channels=3))  # no tumour in these

    class OnePixel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.full((x.shape[0], 1, *x.shape[-2:]), -9.0)
            out[:, :, 0, 0] = 9.0
            return out

    assert choose_min_voxels(OnePixel(), data) == 25  # the smallest size above the 10 voxels


def test_cli_segments_slices_and_whole_patients_and_writes_masks(
    lgg_real: Path, tmp_path: Path
) -> None:
    """One call: a slice (mask PNG of its size), a zipped kaggle_3m patient (scored against its
    own masks) and the same patient's FLAIR as NIfTI (volume in ml from the affine)."""
    import subprocess
    import sys
    import zipfile

    import nibabel as nib

    from workbench.io import load_image

    patient = lgg_real / "TCGA_CS_4941_19960909"
    slice_tif = patient / "TCGA_CS_4941_19960909_12.tif"
    archive = tmp_path / "patient.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(patient.iterdir()):
            z.write(f, f.name)
    n = len(list(patient.glob("*_mask.tif")))
    flair = np.stack(
        [
            load_image(patient / f"TCGA_CS_4941_19960909_{k}.tif").pixels[..., 1]
            for k in range(1, n + 1)
        ]
    )
    # kaggle_3m slices: rows anterior to posterior, columns right to left, slices upwards (LPS)
    affine = np.diag([-0.9, -0.9, 3.0, 1.0])  # mm: 2.43 µl voxels
    nib.save(nib.Nifti1Image(np.transpose(flair, (2, 1, 0)), affine), tmp_path / "flair.nii.gz")
    out = tmp_path / "masks"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "predict",
            "tumor_seg",
            str(slice_tif),
            str(archive),
            str(tmp_path / "flair.nii.gz"),
            "--masks-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    one, zipped, nifti = (json.loads(line) for line in run.stdout.splitlines())
    png = load_image(out / "TCGA_CS_4941_19960909_12_mask.png").pixels
    assert png.shape == (256, 256) and set(np.unique(png)) <= {0.0, 255.0}
    assert int((png > 0).sum()) == one["area_px"]
    assert zipped["slices"] == n and set(zipped["scores"]) >= {"dice", "jaccard", "hd95", "assd"}
    assert zipped["volume_ml"] is None  # tifs carry no spacing
    mask = nib.load(out / "patient_mask.nii.gz")
    assert mask.shape == (256, 256, n) and int(mask.get_fdata().sum()) == zipped["voxels"]
    assert len(list(out.glob("patient_*_mask.png"))) == n
    assert nifti["slices"] == n
    assert nifti["volume_ml"] == pytest.approx(nifti["voxels"] * 0.9 * 0.9 * 3.0 / 1000, abs=0.01)
    assert np.allclose(nib.load(out / "flair_mask.nii.gz").affine, affine)


def test_a_volume_is_segmented_the_same_whatever_order_its_file_stores_voxels_in(
    lgg_real: Path, tmp_path: Path
) -> None:
    """One real patient's FLAIR written three ways (DICOM's LPS order, RAS as converters write,
    and a permuted sagittal-first order): the same mask comes back in world space, each on its
    input's own grid, and it matches the patient's truth."""
    import nibabel as nib

    from workbench.io import load_image
    from workbench.metrics import segmentation_scores
    from workbench.tasks.tumor_seg import mask_nifti, read_volume, segment_volume
    from workbench.weights import load

    patient = lgg_real / "TCGA_CS_4941_19960909"
    n = len(list(patient.glob("*_mask.tif")))
    tifs = [patient / f"TCGA_CS_4941_19960909_{k}" for k in range(1, n + 1)]
    flair = np.stack([load_image(t.with_suffix(".tif")).pixels[..., 1] for t in tifs])
    truth = np.stack([load_image(t.with_name(t.name + "_mask.tif")).pixels > 127 for t in tifs])
    lps = np.transpose(flair, (2, 1, 0))  # (x: right to left, y: anterior to posterior, z: up)
    lps_affine = np.diag([-0.9, -0.9, 3.0, 1.0])
    flip_xy = np.diag([-1.0, -1.0, 1.0, 1.0])
    stored = {
        "lps": (lps, lps_affine),
        "ras": (
            lps[::-1, ::-1],
            lps_affine
            @ np.array([[1, 0, 0, 255], [0, 1, 0, 255], [0, 0, 1, 0], [0, 0, 0, 1]])
            @ flip_xy,
        ),
        "sagittal_first": (np.transpose(lps, (2, 0, 1)), lps_affine[:, [2, 0, 1, 3]]),
    }
    bundle = load("tumor_seg")
    world = {}
    for name, (data, affine) in stored.items():
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
        volume = read_volume(path, tmp_path)
        assert volume.slices.shape == (n, 256, 256)  # axial, whatever the stored order
        result = segment_volume(bundle, volume)
        written = mask_nifti(volume, result.mask)
        assert written.shape == data.shape and np.allclose(written.affine, affine)
        world[name] = nib.as_closest_canonical(written).get_fdata() > 0
        assert segmentation_scores(result.mask, truth)["dice"] > 0.7
    assert np.array_equal(world["lps"], world["ras"])
    assert np.array_equal(world["lps"], world["sagittal_first"])


def test_a_4d_time_series_is_not_a_patient_volume(tmp_path: Path) -> None:
    import nibabel as nib

    from workbench.errors import InputError
    from workbench.tasks.tumor_seg import read_volume

    data = np.random.default_rng(0).random((16, 16, 4, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "dsc.nii.gz")
    with pytest.raises(InputError, match=r"10 time points.*Perfusion tab"):
        read_volume(tmp_path / "dsc.nii.gz", tmp_path)
