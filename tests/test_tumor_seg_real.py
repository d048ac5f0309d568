"""Segmentation on the real LGG patients (``../shared/data``) and its volume post-processing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.data.lgg import LGGSlices, scan_kaggle_3m
from workbench.recipes.tumor_seg import SegOptions, choose_min_voxels, postprocess, score, train
from workbench.tasks.preprocess import Preprocess
from workbench.tasks.tumor_seg import drop_small_components
from workbench.training import TrainConfig


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
    opts = SegOptions(
        size=96,
        folds=1,
        decoder_channels="32,16,16,8,8",
        val_fraction=0.25,
        empty_ratio=0.3,
        max_patients=8,
    )
    cfg = TrainConfig(
        epochs=6, batch_size=8, lr=1e-3, monitor="val_dice", mode="max", progress=False
    )
    report = train(lgg_real, tmp_path / "seg", opts, cfg)
    fold = report["folds"][0]
    # The empty-mask baseline scores Dice 0 on every held-out patient (each has a tumour).
    assert fold["per_patient"]["dice"].mean > 0.3, fold["per_patient"]
    split = json.loads((tmp_path / "seg" / "split.json").read_text())
    assert not set(split["test_patients"]) & set(split["val_patients"])
    assert fold["patients"] == len(split["test_patients"])
    config = json.loads((tmp_path / "seg" / "config.json").read_text())
    assert config["postprocess"]["min_component_voxels"] in (0, 10, 25, 50, 100, 200, 400, 800)
    assert config["model"]["args"]["decoder_channels"] == [32, 16, 16, 8, 8]
    assert (tmp_path / "seg" / "failures.png").is_file()


def test_speck_threshold_is_chosen_on_the_data_given(lgg_real: Path) -> None:
    """A model that marks one pixel everywhere scores best with the largest speck filter."""
    import torch

    records = [r for r in scan_kaggle_3m(lgg_real) if r.patient == "TCGA_CS_4941_19960909"]
    data = LGGSlices(records[:12], Preprocess(size=(32, 32), channels=3))

    class OnePixel(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.full((x.shape[0], 1, *x.shape[-2:]), -9.0)
            out[:, :, 0, 0] = 9.0
            return out

    assert choose_min_voxels(OnePixel(), data) > 12
