"""Learned Tmax: the nets, their inputs and loss by hand, and a small training run on phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from workbench.data.perfusion import InputSpec, Patient, VoxelStrips, resample
from workbench.models import build_model
from workbench.perfusion.pipeline import run_perfusion
from workbench.phantom.perfusion import write_dsc
from workbench.recipes.perfusion import (
    ARCHITECTURES,
    PerfusionOptions,
    TmaxLoss,
    mean_map,
    split_patients,
    tmax_scores,
    train,
)
from workbench.training import TrainConfig


def test_the_study_nets_have_their_sizes_and_keep_the_grid():
    conv2 = build_model({"name": "perfusion_conv2", "args": {"in_channels": 48}})
    assert sum(p.numel() for p in conv2.parameters()) == 48 * 16 + 2 * 16 + 16 + 1  # ~1,000
    conv1 = build_model({"name": "perfusion_conv1", "args": {"in_channels": 48}})
    assert sum(p.numel() for p in conv1.parameters()) == 49
    unet = build_model({"name": "perfusion_unet3d", "args": {"in_channels": 10, "width": 4}})
    assert unet(torch.zeros(1, 10, 3, 21, 30)).shape == (1, 1, 3, 21, 30)  # odd in-plane sizes


def test_a_1x1x1_net_reads_each_voxel_alone():
    conv2 = build_model({"name": "perfusion_conv2", "args": {"in_channels": 6}}).eval()
    volume = torch.randn(1, 6, 2, 3, 4)
    whole = conv2(volume)
    single = conv2(volume[..., 1:2, 2:3, 3:4])
    assert torch.allclose(whole[..., 1:2, 2:3, 3:4], single, atol=1e-6)


def test_resampling_is_linear_and_holds_the_last_value():
    times = np.array([0.0, 2.0, 4.0])
    curves = np.array([[0.0, 2.0, 4.0], [1.0, 1.0, 3.0]])
    out = resample(curves, times, InputSpec(frames=6, step=1.0, aif_channels=False))
    np.testing.assert_allclose(out, [[0, 1, 2, 3, 4, 4], [1, 1, 1, 2, 3, 3]])


def test_the_asymmetric_loss_weighs_over_prediction_by_hand():
    output = torch.tensor([1.0, 3.0, 9.0]).view(1, 1, 1, 1, 3)
    target = torch.tensor([[2.0, 2.0, 0.0], [1.0, 1.0, 0.0]]).view(1, 2, 1, 1, 3)  # third: unscored
    assert float(TmaxLoss(1.0)(output, target)) == pytest.approx(1.0)  # (1 + 1) / 2
    assert float(TmaxLoss(3.0)(output, target)) == pytest.approx(2.0)  # (1 + 3·1) / 2


def test_tmax_scores_by_hand():
    target = np.zeros((1, 8, 8), np.float32)
    target[0, :, :4] = 8.0  # half the slice above 6 s
    mask = np.ones_like(target, bool)
    scores = tmax_scores(target + 1.0, target, mask)
    assert scores["mae"] == pytest.approx(1.0) and scores["bias"] == pytest.approx(1.0)
    assert scores["mse"] == pytest.approx(1.0) and scores["dice_gt6"] == 1.0
    assert tmax_scores(target, target, mask)["ssim"] == pytest.approx(1.0)
    shifted = target.copy()
    shifted[0, :, :2] = 0.0  # half the region lost
    assert tmax_scores(shifted, target, mask)["dice_gt6"] == pytest.approx(2 * 16 / (16 + 32))


def _patient(value: float, mask: np.ndarray) -> Patient:
    shape = mask.shape
    return Patient("p", np.zeros((2, *shape), np.float32), np.full(shape, value), mask, None)


def test_mean_map_averages_only_where_each_patient_is_scored():
    a, b = np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)
    a[0, 0] = True
    b[0, :, 0] = True
    baseline = mean_map([_patient(2.0, a), _patient(6.0, b)])
    # voxel (0,0): both → 4; (0,1): a only → 2; (1,0): b only → 6; (1,1): none → overall mean
    overall = (2 * 2 + 2 * 6) / 4
    np.testing.assert_allclose(baseline[0], [[4.0, 2.0], [6.0, overall]])


def test_voxel_strips_hold_every_scored_voxel_once():
    mask = np.zeros((2, 5, 5), bool)
    mask[0, 1:4, 1:4] = True  # 9 voxels
    mask[1, 0, :] = True  # 5 voxels
    patient = Patient(
        "p", np.random.rand(3, 2, 5, 5).astype(np.float32), np.random.rand(2, 5, 5), mask, None
    )
    strips = VoxelStrips([patient], strip=4)
    assert len(strips) == 4  # 14 voxels in strips of 4
    x, y = strips.x, strips.y
    assert x.shape == (4, 3, 1, 1, 4) and y.shape == (4, 2, 1, 1, 4)
    assert float(y[:, 1].sum()) == 14
    kept = np.sort(y[:, 0][y[:, 1] > 0].numpy())
    np.testing.assert_allclose(kept, np.sort(patient.target[mask]), rtol=1e-6)


def test_patient_splits_never_mix_patients():
    opts = PerfusionOptions(folds=3, holdout=2, val_patients=1)
    held_out, folds = split_patients(11, opts, seed=0)
    tests = np.concatenate([f[2] for f in folds])
    assert sorted(np.concatenate([held_out, tests])) == list(range(11))  # each once
    for fit_idx, val_idx, test_idx in folds:
        parts = [set(fit_idx), set(val_idx), set(test_idx), set(held_out)]
        assert sum(map(len, parts)) == len(set().union(*parts))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Five small simulated patients, conv2 trained against the truth (2 folds, 1 held out)."""
    root = tmp_path_factory.mktemp("perfusion")
    data = write_dsc(root / "dsc", 5, seed=0, shape=(4, 48, 48), n_times=40)
    opts = PerfusionOptions(model="conv2", target="truth", folds=2, holdout=1, frames=40)
    cfg = TrainConfig(**{**vars(ARCHITECTURES["conv2"].defaults), "epochs": 25, "progress": False})
    report = train(data, root / "model", opts, cfg)
    return data, root / "model", report


def test_a_small_run_beats_the_mean_map_and_the_deconvolution_bias(trained):
    _, _, report = trained
    held = {row["method"]: row for row in report["tables"]["held_out"]}
    assert held["cnn"]["mae"] < held["mean_map"]["mae"]
    assert held["cnn"]["mae"] < held["osvd"]["mae"]
    assert held["osvd"]["bias"] > 1.0  # the deconvolution reads Tmax late...
    assert abs(held["cnn"]["bias"]) < held["osvd"]["bias"] / 2  # ...the net trained on truth not
    for fold_cnn, fold_mean in zip(
        report["folds"]["cnn"], report["folds"]["mean_map"], strict=True
    ):
        assert fold_cnn["mae"] < fold_mean["mae"]


def test_the_model_folder_serves_the_cnn_method(trained, tmp_path):
    data, model, _ = trained
    config = json.loads((model / "config.json").read_text())
    assert config["preprocess"]["frames"] == 40 and config["training"]["target"] == "truth"
    assert "mean_map" in (model / "README.md").read_text()
    patient = data / "patient_004"
    cnn = run_perfusion(patient / "dsc", tmp_path / "cnn", method="cnn", weights=str(model))
    osvd = run_perfusion(patient / "dsc", tmp_path / "osvd", method="osvd")
    fit = run_perfusion(patient / "dsc", tmp_path / "template")
    assert cnn["method"] == "cnn" and cnn["cbf_cbv_mtt_method"] == fit["method"] == "template"
    truth = np.asarray(nib.load(patient / "truth_tmax.nii.gz").dataobj)
    tissue = np.asarray(nib.load(patient / "tissue_mask.nii.gz").dataobj) > 0
    errors = {}
    for name, summary in (("cnn", cnn), ("osvd", osvd)):
        image = nib.load(tmp_path / name / "tmax.nii.gz")
        tmax = np.asarray(image.dataobj)
        scored = tissue & (tmax != 0)
        errors[name] = np.abs(tmax - truth)[scored].mean()
        voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000
        assert summary["tmax_gt6_ml"] == pytest.approx((tmax > 6).sum() * voxel_ml, abs=0.01)
    assert errors["cnn"] < errors["osvd"]
    # CBF is the default method's either way
    np.testing.assert_array_equal(
        nib.load(tmp_path / "cnn" / "cbf.nii.gz").dataobj,
        nib.load(tmp_path / "template" / "cbf.nii.gz").dataobj,
    )


def test_weights_without_the_cnn_method_is_a_clear_mistake(tmp_path):
    from workbench.errors import InputError

    with pytest.raises(InputError, match="--method cnn"):
        run_perfusion(tmp_path, tmp_path / "out", method="osvd", weights="somewhere")
    with pytest.raises(InputError, match=r"unknown perfusion method 'svd'.*template, ssvd"):
        run_perfusion(tmp_path, tmp_path / "out", method="svd")  # before reading the empty folder


def test_the_unet_trains_on_whole_volumes_and_reloads(trained, tmp_path):
    from workbench.weights import load_folder

    data, _, _ = trained
    opts = PerfusionOptions(model="unet3d", target="osvd", folds=2, width=4, frames=40)
    cfg = TrainConfig(**{**vars(ARCHITECTURES["unet3d"].defaults), "epochs": 2, "progress": False})
    report = train(data, tmp_path / "unet", opts, cfg)
    assert [row["method"] for row in report["tables"]["held_out"]] == ["cnn", "mean_map"]
    bundle = load_folder(tmp_path / "unet", "test")
    assert bundle.config.model.to_dict() == {
        "name": "perfusion_unet3d",
        "args": {"in_channels": 80, "width": 4},
    }
    inputs = torch.zeros(1, 80, 4, 48, 48)
    assert bundle.model(inputs).shape == (1, 1, 4, 48, 48)


def test_the_cli_uses_the_shipped_cnn_by_default(tmp_path, capsys):
    from workbench.cli import main

    example = Path(__file__).resolve().parents[1] / "examples" / "perfusion_phantom.zip"
    assert main(["perfusion", str(example), "--out", str(tmp_path), "--method", "cnn"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "cnn" and summary["weights"] == "local: weights/perfusion"
    tmax = np.asarray(nib.load(tmp_path / "tmax.nii.gz").dataobj)
    voxel_ml = abs(np.linalg.det(nib.load(tmp_path / "tmax.nii.gz").affine[:3, :3])) / 1000
    assert summary["tmax_gt6_ml"] == pytest.approx((tmax > 6).sum() * voxel_ml, abs=0.01)
