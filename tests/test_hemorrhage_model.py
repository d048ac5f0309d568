"""The haemorrhage recipe learns from phantom CT and beats chance on held-out phantom heads
(the shipped model learnt real slices: ``test_hemorrhage_real.py``).

Held-out means other heads, drawn with another seed, never seen in training or checkpoint
choice; each subtype is given to most of them so that every AUC rests on enough positives.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data.rsna import LABELS, RSNASlices, scan_rsna
from workbench.phantom.ct import write_rsna
from workbench.recipes.hemorrhage import HemorrhageOptions, scores, train
from workbench.tasks import get_task
from workbench.tasks.hemorrhage import order_along_head, predict, study_summary
from workbench.training import TrainConfig
from workbench.transforms.ct import CTPreprocess
from workbench.weights import load_folder, resolve

SMALL = {"shape": (24, 128, 128), "spacing": (5.0, 1.8, 1.8)}
SHIPPED = Path(__file__).resolve().parents[1] / "weights" / "hemorrhage"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six unseen heads, each subtype in about two thirds of them."""
    return write_rsna(
        tmp_path_factory.mktemp("held_out"),
        n=6,
        seed=9001,
        prevalence=dict.fromkeys(LABELS[1:], 0.67),
        **SMALL,
    )


def held_out_aucs(folder: Path, data: Path) -> dict[str, float]:
    bundle = load_folder(folder, "test")
    index = scan_rsna(data)
    prep = CTPreprocess.from_dict(bundle.config.preprocess)
    loader = torch.utils.data.DataLoader(RSNASlices(index.paths, index.targets, prep), 32)
    with torch.inference_mode():
        prob = torch.cat([torch.sigmoid(bundle.model(x)) for x, _ in loader]).numpy()
    report = scores(index.targets.astype(float), prob)
    return {k: v["auc"] for k, v in report["per_label"].items()}


@pytest.mark.slow
def test_small_training_run_beats_chance_for_every_subtype(tmp_path: Path, held_out: Path) -> None:
    """The whole recipe on a small phantom (split, resampling, fit, test report, ROC, model
    folder) with EfficientNet-Lite0 at 96 px: one to a few minutes of CPU, hence slow."""
    # every subtype in half the heads, epidural slices ×4: a small set still shows each enough
    prevalence = dict.fromkeys(LABELS[1:], 0.5)
    data = write_rsna(tmp_path / "train", n=16, seed=5, prevalence=prevalence, **SMALL)
    opts = HemorrhageOptions(
        archs="efficientnet_lite0",
        size=96,
        split_by="patient",
        val_fraction=0.15,
        test_fraction=0.15,
        epidural_factor=4,
        cache=True,
    )
    cfg = TrainConfig(
        epochs=6, batch_size=32, lr=1e-3, monitor="val_wlogloss", patience=6, progress=False
    )
    out = tmp_path / "model"
    report = train(data, out, opts, cfg, data_note="phantom")
    for name in ("config.json", "model.safetensors", "README.md", "roc_efficientnet_lite0.png"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == list(LABELS) and config["preprocess"]["size"] == [96, 96]
    assert report["shipped"] == "efficientnet_lite0"
    aucs = held_out_aucs(out, held_out)
    assert all(auc > 0.6 for auc in aucs.values()), aucs


def test_series_order_summary_and_cli_contract(held_out: Path, tmp_path: Path) -> None:
    """Slices come back top of the head first whatever the file order; the study answer is
    the per-label maximum; predict returns six probabilities in JSON-able form."""
    spec = get_task("hemorrhage")
    index = scan_rsna(held_out)
    images = [spec.read(p) for p in index.paths[:30]]
    order = order_along_head(images)
    z = [images[i].header["ImagePositionPatient"][2] for i in order]
    assert z == sorted(z, reverse=True)
    probs = np.array([[0.1, 0.0, 0.2, 0.0, 0.0, 0.05], [0.9, 0.0, 0.1, 0.7, 0.2, 0.0]])
    summary = study_summary(list(LABELS), probs)
    assert summary["probabilities"]["any"] == 0.9
    assert summary["probabilities"]["intraparenchymal"] == 0.2
    assert summary["positive"] == ["any", "intraventricular"] and summary["slices"] == 2
    if not (SHIPPED / "model.safetensors").is_file():
        pytest.skip("no shipped weights")
    folder, source = resolve(SHIPPED)
    out = predict(load_folder(folder, source), images[0])
    json.dumps(out)
    assert list(out["probabilities"]) == list(LABELS)
    assert all(0.0 <= p <= 1.0 for p in out["probabilities"].values())
