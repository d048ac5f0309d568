"""An honest "unsure": out-of-distribution scores on a classifier's penultimate features.

Every classifier (one timm network or an ensemble of them; softmax or multi-label sigmoid) gets
the same scorer. Features are each member's pooled pre-logit vector, L2-normalised and
concatenated (divided by sqrt(members), so the whole is a unit vector).

Method, chosen by measurement (``python bench/ood.py --compare``: OOD AUROC, held-out
in-distribution images against RSNA CT slices, CT DICOMs, phantoms, photos and noise; mean over
those five sets for the shipped contrast / 44-class / detection models):

    kNN k=1 (this)                 0.998 / 0.970 / 0.943
    kNN k=10                       0.994 / 0.915 / 0.928
    Mahalanobis, LedoitWolf        0.990 / 0.923 / 0.961
    energy on logits               0.739 / 0.916 / 0.818

so the k-nearest-neighbour distance (Sun et al., 2022, "Out-of-distribution detection with deep
nearest neighbors") to a bank of training features, after a PCA fitted on them (with the
off-PCA residual added back). It is best on average and on two of three models, needs no labels
or class means (so the multi-label haemorrhage model uses it unchanged), and unlike energy it
does not depend on how confident the head is, which is exactly what fails on CT slices.

Stored beside the weights: ``ood.safetensors`` (the PCA and a float16 bank of training
features, about 1 MB) and ``config.json["ood"]`` (method, k, threshold, confidence floor, the
measured flag rates). The threshold keeps 95 % of held-out in-distribution images. Independently,
a calibrated top probability under the confidence floor is "low confidence". Only safetensors
is ever read.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from torch import nn

from workbench.io import Image, load_image
from workbench.model_config import ModelConfig
from workbench.models import Ensemble

OOD_NAME = "ood.safetensors"
METHODS = ("knn", "mahalanobis", "energy")
METHOD = "knn"
KEEP = 0.95  # share of held-out in-distribution images the threshold keeps
CONFIDENCE_FLOOR = 0.6  # calibrated top probability under this is "low confidence"
K = 1  # neighbours: Sun et al. scale k with the share of training data kept (k=50 for 50,000
# CIFAR images); with banks of 150-2000 images k=1 measured best on all three models
PCA_DIMS = 128
BANK_SIZE = 2000

REASON_OOD = "unlike the training data"
REASON_LOW = "low confidence"
REASON_PHANTOM = "trained on phantom (synthetic) images, not on real scans"
REASON_NO_STATS = "no out-of-distribution statistics in the model folder: confidence floor only"

Input = Path | str | Image | torch.Tensor


def members(model: nn.Module) -> list[nn.Module]:
    return list(model.members) if isinstance(model, Ensemble) else [model]


@torch.inference_mode()
def embed(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass: unit-norm features ``(B, D)`` (members' normalised pre-logits, concatenated)
    and logits ``(B, M, C)``, exactly the model's own (timm ``forward_head(pre_logits=True)``
    then the classifier)."""
    feats, logits = [], []
    for m in members(model):
        f = m.forward_head(m.forward_features(x), pre_logits=True)
        logits.append(m.get_classifier()(f))
        feats.append(F.normalize(f.float(), dim=1))
    return torch.cat(feats, 1) / len(feats) ** 0.5, torch.stack(logits, 1)


def classifier_input(preprocess: dict) -> Callable[[Input], torch.Tensor]:
    """Paths and Images → the MR classifiers' model input; tensors (any model's input, e.g.
    the haemorrhage CT windows) pass through as given."""
    from workbench.transforms.mr import Preprocess, to_tensor

    def prepare(item: Input) -> torch.Tensor:
        if isinstance(item, torch.Tensor):
            return item
        image = item if isinstance(item, Image) else load_image(Path(item))
        return to_tensor(image.pixels, Preprocess.from_dict(preprocess))

    return prepare


def extract(
    model: nn.Module,
    inputs: Sequence[Input],
    prepare: Callable[[Input], torch.Tensor],
    batch: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Features ``(N, D)`` and logits ``(N, M, C)`` of many inputs, ``batch`` at a time."""
    device = next(model.parameters()).device
    feats, logits = [], []
    for start in range(0, len(inputs), batch):
        x = torch.stack([prepare(i) for i in inputs[start : start + batch]]).to(device)
        f, z = embed(model, x)
        feats.append(f.cpu().numpy())
        logits.append(z.float().cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)


def _pca(feats: np.ndarray, dims: int) -> PCA:
    return PCA(min(dims, *feats.shape), random_state=0).fit(feats)


def _project(stats: dict[str, np.ndarray], feats: np.ndarray) -> np.ndarray:
    return (feats - stats["pca_mean"]) @ stats["pca_components"].astype(np.float32).T


def fit_stats(
    feats: np.ndarray,
    logits: np.ndarray,
    method: str = METHOD,
    pca_dims: int = PCA_DIMS,
    bank_size: int = BANK_SIZE,
    multilabel: bool = False,
) -> dict[str, np.ndarray]:
    """What ``score`` needs, fitted on training features (nothing for energy).

    Mahalanobis uses the predicted classes as class labels (one class for a multi-label model),
    so no labels are needed for any method.
    """
    if method == "energy":
        return {"none": np.zeros(1, np.float32)}
    pca = _pca(feats, pca_dims)
    stats = {
        "pca_mean": pca.mean_.astype(np.float32),
        "pca_components": pca.components_.astype(np.float16),
    }
    z = _project(stats, feats)
    if method == "knn":
        keep = np.random.default_rng(0).permutation(len(z))[:bank_size]
        stats["bank"] = z[keep].astype(np.float16)
        return stats
    if method != "mahalanobis":
        raise ValueError(f"unknown OOD method {method!r}; use one of {METHODS}")
    pred = np.zeros(len(z), int) if multilabel else logits.mean(1).argmax(1)
    means = np.stack([z[pred == c].mean(0) for c in np.unique(pred)])
    centred = z - means[np.searchsorted(np.unique(pred), pred)]
    stats["class_means"] = means.astype(np.float32)
    stats["precision"] = LedoitWolf().fit(centred).precision_.astype(np.float32)
    return stats


def score(
    stats: dict[str, np.ndarray],
    feats: np.ndarray,
    logits: np.ndarray,
    method: str = METHOD,
    k: int = K,
    multilabel: bool = False,
) -> np.ndarray:
    """OOD score per input, higher = less like the training data.

    knn: Euclidean distance to the k-th nearest training feature (via the PCA: the in-subspace
    distance plus the input's off-subspace residual);
    mahalanobis: the smallest squared Mahalanobis distance to a class mean; energy: minus the
    members' mean log-sum-exp of the logits (softplus summed over labels for a multi-label one).
    """
    if method == "energy":
        free = (
            np.logaddexp(0, logits).sum(-1)
            if multilabel
            else torch.logsumexp(torch.from_numpy(logits), -1).numpy()
        )
        return -free.mean(1)
    feats = np.asarray(feats, np.float32)
    z = _project(stats, feats)
    if method == "knn":
        # The PCA drops what lies off the training subspace; adding it back as a residual keeps
        # the full-dimensional distance (up to the bank's own small residuals).
        residual = np.maximum(((feats - stats["pca_mean"]) ** 2).sum(1) - (z**2).sum(1), 0)
        bank = stats["bank"].astype(np.float32)
        d2 = (z**2).sum(1)[:, None] - 2 * z @ bank.T + (bank**2).sum(1)[None]
        d2 = np.maximum(d2, 0) + residual[:, None]
        return np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])
    diff = z[:, None] - stats["class_means"][None]
    return np.einsum("ncd,de,nce->nc", diff, stats["precision"], diff).min(1)


def threshold_for(heldout_scores: np.ndarray, keep: float = KEEP) -> float:
    """The score under which ``keep`` of the held-out in-distribution images fall."""
    return float(np.quantile(heldout_scores, keep))


# --- a model folder's statistics -------------------------------------------------------------


def trained_on_phantoms(config: ModelConfig) -> bool:
    text = str(config.training.get("data_description", "")).lower()
    return "phantom" in text or "synthetic" in text


@lru_cache(maxsize=16)
def _load_stats(path: str, mtime: float) -> dict[str, np.ndarray]:
    return load_file(path)


def load_stats(folder: Path) -> dict[str, np.ndarray] | None:
    """The folder's ``ood.safetensors`` (cached per file version), or None when absent."""
    path = Path(folder) / OOD_NAME
    return _load_stats(str(path), path.stat().st_mtime) if path.is_file() else None


def verdict(
    config: ModelConfig,
    folder: Path,
    feats: np.ndarray,
    logits: np.ndarray,
    confidence: float | None,
) -> dict[str, Any]:
    """``unsure``, ``ood_score`` and ``reason`` for one input (``feats`` ``(1, D)``, ``logits``
    ``(1, M, C)``). ``confidence``: the calibrated top probability, None to skip the floor
    (multi-label). Reasons join with "; " when several apply."""
    ood = config.ood
    stats = load_stats(folder) if ood else None
    reasons = []
    value = None
    if trained_on_phantoms(config):
        reasons.append(REASON_PHANTOM)
    if stats is not None:
        multilabel = bool(ood.get("multilabel", False))
        value = float(score(stats, feats, logits, ood["method"], ood.get("k", K), multilabel)[0])
        if value > ood["threshold"]:
            reasons.append(REASON_OOD)
    floor = (ood or {}).get("confidence_floor", CONFIDENCE_FLOOR)
    if confidence is not None and confidence < floor:
        reasons.append(REASON_LOW)
    unsure = bool(reasons)
    if stats is None:
        reasons.append(REASON_NO_STATS)
    return {
        "unsure": unsure,
        "ood_score": None if value is None else round(value, 4),
        "ood_threshold": None if stats is None else round(float(ood["threshold"]), 4),
        "reason": "; ".join(reasons),
    }


def fit_ood(
    model_dir: Path | str,
    train_images: Sequence[Input],
    heldout_images: Sequence[Input],
    *,
    prepare: Callable[[Input], torch.Tensor] | None = None,
    multilabel: bool | None = None,
    method: str = METHOD,
    confidence_floor: float = CONFIDENCE_FLOOR,
    max_train: int = BANK_SIZE,
    batch: int = 32,
) -> dict[str, Any]:
    """Fit and store the OOD statistics of a trained model folder, without retraining.

    ``train_images`` (subsampled to ``max_train``) fit the statistics; ``heldout_images`` (never
    trained on) set the threshold. Items are paths, :class:`Image` s or model-input tensors
    ``(C, H, W)``; ``prepare`` turns them into the model's input (default: the MR classifiers'
    preprocessing from ``config.json``; pass tensors for the haemorrhage model's CT windows).
    Writes ``ood.safetensors`` and ``config.json["ood"]``, and returns the latter.
    """
    from workbench.weights import load_folder

    folder = Path(model_dir)
    bundle = load_folder(folder, f"local: {folder}", device=torch.device("cpu"))
    prepare = prepare or classifier_input(bundle.config.preprocess)
    if multilabel is None:
        multilabel = bundle.config.task == "hemorrhage"
    train = list(train_images)
    train = random.Random(0).sample(train, min(max_train, len(train)))
    train_f, train_z = extract(bundle.model, train, prepare, batch)
    held_f, held_z = extract(bundle.model, list(heldout_images), prepare, batch)
    return save_ood(folder, train_f, train_z, held_f, held_z, method, multilabel, confidence_floor)


def save_ood(
    folder: Path,
    train_feats: np.ndarray,
    train_logits: np.ndarray,
    heldout_feats: np.ndarray,
    heldout_logits: np.ndarray,
    method: str = METHOD,
    multilabel: bool = False,
    confidence_floor: float = CONFIDENCE_FLOOR,
) -> dict[str, Any]:
    """Fit on the training features, threshold on the held-out ones, write both files."""
    stats = fit_stats(train_feats, train_logits, method, multilabel=multilabel)
    held = score(stats, heldout_feats, heldout_logits, method, K, multilabel)
    entry = {
        "method": method,
        "k": K,
        "pca_dims": int(stats["pca_components"].shape[0]) if "pca_components" in stats else 0,
        "multilabel": multilabel,
        "threshold": threshold_for(held),
        "keep": KEEP,
        "confidence_floor": confidence_floor,
        "fitted_on": {"train": len(train_feats), "heldout": len(held)},
    }
    stats = {k: np.ascontiguousarray(v) for k, v in stats.items()}  # sklearn's may be F-ordered
    save_file(stats, str(Path(folder) / OOD_NAME), metadata={"method": method})
    # The whole entry is new: rates measured with the previous statistics (``measured``, from
    # bench/ood.py) no longer describe this threshold.
    replace(ModelConfig.read(folder), ood=entry).write(folder)
    return entry


def check(
    bundle: Any, x: torch.Tensor, confidence: Sequence[float] | None = None
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """For task modules with their own preprocessing (the haemorrhage CT windows): one pass
    over the batch ``x`` giving the logits (``(B, C)`` for one network, ``(B, M, C)`` for an
    ensemble) and one :func:`verdict` per input (``confidence`` None: no floor)."""
    feats, logits = embed(bundle.model, x)
    f, z = feats.cpu().numpy(), logits.float().cpu().numpy()
    verdicts = [
        verdict(
            bundle.config,
            bundle.folder,
            f[i : i + 1],
            z[i : i + 1],
            None if confidence is None else float(confidence[i]),
        )
        for i in range(len(f))
    ]
    return (logits[:, 0] if logits.shape[1] == 1 else logits), verdicts


def card_section(entry: dict[str, Any]) -> str:
    """The model card's "Unsure" section from ``config["ood"]`` (with ``measured`` rates)."""
    lines = [
        "## Unsure",
        "",
        f"The app and CLI answer `unsure` when the image is unlike the training data (in the "
        f"network's feature space, its distance to the k-th nearest of "
        f"{entry['fitted_on']['train']} training images, k = {entry['k']}, is above "
        f"{entry['threshold']:.4f}, a threshold that keeps {entry['keep']:.0%} of "
        f"{entry['fitted_on']['heldout']} held-out images) or when the calibrated probability is "
        f"under {entry['confidence_floor']}.",
    ]
    if not entry.get("multilabel"):  # the MR classifiers: workbench.modality's head-CT check
        lines[-1] += (
            " A picture the haemorrhage model takes for head CT is unsure too (DICOM: its "
            "modality); the rates below leave that check out, so on CT slices the app flags "
            "more than they show."
        )
    sets = entry.get("measured", {}).get("sets", {})
    if sets:
        lines[-1] += " Flag rates measured by `python bench/ood.py`:"
        lines += [
            "",
            "| images | n | flagged: unlike training | flagged in all |",
            "|---|---|---|---|",
        ]
    for name, row in sets.items():
        lines.append(f"| {name} | {row['n']} | {row['ood']:.0%} | {row['unsure']:.0%} |")
    held = entry.get("measured", {}).get("heldout")
    if held:
        lines += [
            "",
            f"Held-out accuracy on the images not flagged: {held['accuracy_kept']:.2%} "
            f"({held['kept']:.1%} of them kept; {held['accuracy']:.2%} on all).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m workbench.ood", description="Fit a model folder's OOD statistics."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit on the training images, threshold on held-out ones")
    fit.add_argument("task", help="task name (weights/<task>) or a model folder")
    fit.add_argument("--data", type=Path, required=True, help="the dataset split.json refers to")
    fit.add_argument("--more-data", type=Path, nargs="*", default=[], help="its other sources")
    fit.add_argument("--extra-data", type=Path, help="a second dataset trained on (all of it)")
    fit.add_argument("--weights", type=Path, help="model folder (default weights/<task>)")
    fit.add_argument("--method", choices=METHODS, default=METHOD)
    fit.add_argument("--max-train", type=int, default=BANK_SIZE)
    args = parser.parse_args(argv)
    from workbench.data.folders import sample_image
    from workbench.recipes.classifier import split_samples
    from workbench.weights import weights_dir

    folder = args.weights or weights_dir() / args.task
    train, held = split_samples(folder, args.data, args.more_data, args.extra_data)
    to_input = classifier_input(ModelConfig.read(folder).preprocess)
    torch.set_num_threads(2)
    entry = fit_ood(
        folder,
        train,
        held,
        prepare=lambda s: to_input(sample_image(s)),
        method=args.method,
        max_train=args.max_train,
    )
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
