"""The "unsure" check: OOD scores by hand, a folder's statistics round trip, and the shipped
contrast model on a CT slice and on its own held-out images."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from workbench import ood
from workbench.data.folders import sample_image
from workbench.io import load_image
from workbench.modality import REASON_CT
from workbench.model_config import ModelConfig
from workbench.models import build_model
from workbench.recipes.classifier import split_samples
from workbench.tasks import get_task
from workbench.weights import load_folder, save_pretrained

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("contrast", "tumor44", "tumor_detect")


def _identity_pca(d: int) -> dict[str, np.ndarray]:
    return {"pca_mean": np.zeros(d, np.float32), "pca_components": np.eye(d, dtype=np.float16)}


def test_knn_score_is_the_distance_to_the_kth_neighbour() -> None:
    stats = {**_identity_pca(2), "bank": np.eye(2, dtype=np.float16)}
    x = np.array([[0.6, 0.8]], np.float32)
    # distances to (1, 0) and (0, 1): sqrt(0.4² + 0.8²) and sqrt(0.6² + 0.2²)
    assert ood.score(stats, x, None, "knn", k=1)[0] == pytest.approx(np.sqrt(0.4), abs=1e-6)
    assert ood.score(stats, x, None, "knn", k=2)[0] == pytest.approx(np.sqrt(0.8), abs=1e-6)


def test_mahalanobis_and_energy_by_hand() -> None:
    stats = {
        **_identity_pca(2),
        "class_means": np.array([[0.0, 0.0], [5.0, 5.0]], np.float32),
        "precision": np.diag([1.0, 4.0]).astype(np.float32),
    }
    x = np.array([[1.0, 1.0]], np.float32)
    assert ood.score(stats, x, None, "mahalanobis")[0] == pytest.approx(1 + 4)  # nearest: 0
    logits = np.array([[[0.0, np.log(3.0)]]], np.float32)  # one member: log(1 + 3)
    assert ood.score({}, x, logits, "energy")[0] == pytest.approx(-np.log(4.0), abs=1e-6)


def test_threshold_keeps_95_percent() -> None:
    scores = np.arange(1000, dtype=float)
    assert np.mean(scores <= ood.threshold_for(scores)) == pytest.approx(0.95, abs=0.002)


def _tiny_folder(tmp_path: Path, description: str = "real MR") -> Path:
    spec = {"name": "timm_classifier", "args": {"backbone": "test_efficientnet", "num_classes": 3}}
    torch.manual_seed(0)
    config = {
        "task": "contrast",
        "title": "tiny classifier",
        "model": spec,
        "labels": ["a", "b", "c"],
        "preprocess": {"size": [32, 32], "channels": 3, "imagenet_norm": False},
        "training": {"data_description": description},
    }
    return save_pretrained(build_model(spec).eval(), config, tmp_path / "m", "card")


def test_fit_ood_stores_safetensors_and_flags_unlike_inputs(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    gen = torch.Generator().manual_seed(0)
    like = [0.5 + 0.05 * torch.randn(3, 32, 32, generator=gen) for _ in range(60)]
    entry = ood.fit_ood(folder, like[:40], like[40:])
    stored = load_file(str(folder / ood.OOD_NAME))  # safetensors, nothing else
    assert set(stored) == {"pca_mean", "pca_components", "bank"}
    assert json.loads((folder / "config.json").read_text())["ood"] == entry
    assert entry["method"] == "knn" and entry["fitted_on"] == {"train": 40, "heldout": 20}
    bundle = load_folder(folder, "test")
    unlike = torch.linspace(-3, 3, 32 * 32 * 3).view(3, 32, 32)  # a ramp, not noise around 0.5
    logits, verdicts = ood.check(bundle, torch.stack([like[0], unlike]))  # no confidence floor
    assert logits.shape == (2, 3)
    assert not verdicts[0]["unsure"] and verdicts[0]["reason"] == ""
    assert verdicts[1]["unsure"] and verdicts[1]["reason"] == ood.REASON_OOD
    assert verdicts[1]["ood_score"] > entry["threshold"]


def test_verdict_without_statistics_uses_the_floor_and_says_so(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path)
    config = ModelConfig.read(folder)
    f, z = np.zeros((1, 8), np.float32), np.zeros((1, 1, 3), np.float32)
    sure = ood.verdict(config, folder, f, z, confidence=0.99)
    assert not sure["unsure"] and sure["ood_score"] is None
    assert sure["reason"] == ood.REASON_NO_STATS
    low = ood.verdict(config, folder, f, z, confidence=0.4)
    assert low["unsure"] and low["reason"].startswith(ood.REASON_LOW)


def test_a_phantom_trained_model_is_always_unsure(tmp_path: Path) -> None:
    folder = _tiny_folder(tmp_path, "Synthetic phantom head CT: a demo")
    config = ModelConfig.read(folder)
    f, z = np.zeros((1, 8), np.float32), np.zeros((1, 1, 3), np.float32)
    out = ood.verdict(config, folder, f, z, confidence=1.0)
    assert out["unsure"] and ood.REASON_PHANTOM in out["reason"]


@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_statistics_are_small_safetensors(task: str) -> None:
    folder = ROOT / "weights" / task
    entry = json.loads((folder / "config.json").read_text())["ood"]
    assert entry["method"] == ood.METHOD and entry["threshold"] > 0
    assert (folder / ood.OOD_NAME).stat().st_size < 4e6
    stats = ood.load_stats(folder)
    assert stats["bank"].shape == (entry["fitted_on"]["train"], entry["pca_dims"])


@pytest.fixture(scope="module")
def contrast():
    return load_folder(ROOT / "weights" / "contrast", "test", device=torch.device("cpu"))


def test_ct_slices_given_to_the_contrast_model_are_unsure(shared_data: Path, contrast) -> None:
    """Real RSNA brain-window slices and a CT DICOM: the MR model says it is unsure, by its own
    score or because the slice looks like head CT (workbench.modality)."""
    slices = sorted((shared_data / "datasets/rsna_ich_sample/stage_2_train").glob("*.png"))[:12]
    dicom = shared_data / "dicom/DICOMSamples/CT_Explicit_Little.dcm"
    for path in [*slices, dicom]:
        out = get_task("contrast").predict(contrast, load_image(path))
        assert out["unsure"], path.name
        assert REASON_CT in out["reason"] or ood.REASON_OOD in out["reason"], out["reason"]


def test_mr_pictures_are_not_taken_for_head_ct(shared_data: Path) -> None:
    from workbench.modality import looks_like_head_ct

    mr = sorted((shared_data / "datasets/brain_tumor_mri_44c").rglob("*.jp*g"))[::150][:20]
    assert len(mr) == 20 and not any(looks_like_head_ct(load_image(p)) for p in mr)
    ct = sorted((shared_data / "datasets/rsna_ich_sample/stage_2_train").glob("*.png"))[:20]
    assert sum(looks_like_head_ct(load_image(p)) for p in ct) >= 15  # about 9 in 10
    assert looks_like_head_ct(load_image(shared_data / "dicom/DICOMSamples/CT_Explicit_Little.dcm"))


def test_held_out_images_are_mostly_not_flagged(shared_data: Path, contrast) -> None:
    data = shared_data / "datasets"
    more = [data / "lgg_kaggle_3m/kaggle_3m"]  # the held-out set spans both training sources
    _, held = split_samples(contrast.folder, data / "brain_tumor_mri_44c", more)
    draw = random.Random(1).sample(held, 20)
    flagged = [get_task("contrast").predict(contrast, sample_image(s))["unsure"] for s in draw]
    assert sum(flagged) <= 4  # about 5 % expected; 20 % leaves room for a 20-image draw
