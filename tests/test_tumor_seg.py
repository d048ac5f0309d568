"""Segmentation end to end on phantom data: train → save → resolve → predict, and the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench import weights
from workbench.data.lgg import patient_folds, read_mask, scan_kaggle_3m, split_by_patient
from workbench.errors import InputError
from workbench.io import load_image
from workbench.phantom import write_dataset
from workbench.recipes.tumor_seg import SegOptions, arch_list, train
from workbench.tasks import get_task
from workbench.tasks.tumor_seg import voxel_size
from workbench.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lgg(tmp_path_factory) -> Path:
    return write_dataset("tumor_seg", tmp_path_factory.mktemp("lgg"), n=6, seed=3)


def test_loader_reads_the_kaggle_3m_layout(lgg: Path) -> None:
    records = scan_kaggle_3m(lgg)
    assert len({r.patient for r in records}) == 6
    first = [r for r in records if r.patient == records[0].patient]
    assert [r.index for r in first] == list(range(1, len(first) + 1))  # numeric, not text order
    assert all(r.mask.name == f"{r.image.stem}_mask.tif" for r in records)


def test_splits_never_share_a_patient(lgg: Path) -> None:
    records = scan_kaggle_3m(lgg)
    tested = []
    for train_idx, test_idx in patient_folds(records, folds=3, seed=0):
        fit_idx, val_idx = split_by_patient(records, train_idx, 0.3, seed=0)
        groups = [{records[i].patient for i in idx} for idx in (fit_idx, val_idx, test_idx)]
        assert not (groups[0] & groups[1]) and not (groups[0] & groups[2])
        assert not (groups[1] & groups[2])
        tested += groups[2]
    assert sorted(tested) == sorted({r.patient for r in records})  # every patient tested once


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no kaggle_3m slices"):
        scan_kaggle_3m(tmp_path)


def test_train_save_resolve_predict_beats_the_empty_mask(
    lgg: Path, tmp_path: Path, monkeypatch
) -> None:
    opts = SegOptions(
        arch="unet,deeplabv3plus",  # both trained on the same folds, the better one shipped
        encoder="tu-efficientnet_lite0",
        pretrained=True,  # ImageNet Lite0 from the PyPI package: offline, and it learns fast
        size=64,
        folds=2,
        val_fraction=0.34,
        empty_ratio=0.5,
    )
    cfg = TrainConfig(
        epochs=10,
        batch_size=8,
        lr=1e-3,
        monitor="val_dice",
        mode="max",
        patience=12,
        progress=False,
    )
    report = train(lgg, tmp_path / "tumor_seg", opts, cfg)
    # The empty-mask baseline scores Dice 0 on every patient with a tumour.
    per_patient = [fold["per_patient"]["dice"].mean for fold in report["folds"]]
    assert min(per_patient) > 0.2, per_patient  # far above the baseline; fold-to-fold noise
    assert {"dice_per_patient", "hd95_per_slice", "assd_per_patient"} <= set(report["metrics"])
    card = (tmp_path / "tumor_seg" / "README.md").read_text()
    assert "model-index" in card and "not for diagnosis" in card and "± " in card
    for arch in ("unet", "deeplabv3plus"):
        assert (tmp_path / "tumor_seg" / "runs" / arch / "fold0" / "curve_loss.png").is_file()
    compared = {row["architecture"]: row for row in report["compared"]}
    chosen = max(compared, key=lambda a: float(compared[a]["validation Dice (chooses)"]))
    assert report["config"].model.args["arch"] == chosen  # chosen on validation, not test
    assert "chosen by validation Dice" in card

    monkeypatch.setenv("WORKBENCH_WEIGHTS_DIR", str(tmp_path))
    bundle = weights.load_folder(*weights.resolve("tumor_seg"))
    records = scan_kaggle_3m(lgg)
    tumour_slice = max(records, key=lambda r: read_mask(r.mask).sum())  # the clearest tumour
    result = get_task("tumor_seg").predict(bundle, load_image(tumour_slice.image))
    assert result["tumor_found"] and result["area_px"] > 0
    assert result["weights"] == f"local: {tmp_path / 'tumor_seg'}"  # the override, named as it is

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "predict",
            "tumor_seg",
            str(tumour_slice.image),
            "--weights",
            str(tmp_path / "tumor_seg"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[0])
    assert line["source"] == tumour_slice.image.name and line["area_px"] == result["area_px"]
    assert np.isfinite(line["area_px"])


def test_architectures_are_named_from_the_two_the_recipe_builds() -> None:
    assert arch_list("unet, deeplabv3plus") == ["unet", "deeplabv3plus"]
    with pytest.raises(InputError, match="unet or deeplabv3plus"):
        arch_list("unet,fpn")


@pytest.mark.parametrize("text", ["0.9 0.9", "0.9 0.9 0", "a b c", "1 1 50", "1 1 1 1"])
def test_a_voxel_size_needs_three_sizes_in_mm(text: str) -> None:
    with pytest.raises(InputError, match="three sizes in mm"):
        voxel_size(text)


def test_a_voxel_size_reads_as_typed() -> None:
    assert voxel_size("0.94, 0.94 × 5") == (0.94, 0.94, 5.0)
    assert voxel_size("1x1x3") == (1.0, 1.0, 3.0)
    assert voxel_size("  ") is None
