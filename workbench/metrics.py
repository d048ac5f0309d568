"""Segmentation and classification metrics.

Segmentation: overlap (Dice, Jaccard) and surface distances (Hausdorff, HD95, ASSD) on binary
masks in 2D or 3D, in physical units when a voxel spacing is given. Surface distances are written
here with scipy's exact Euclidean distance transform rather than taken from MONAI or medpy: those
are heavy dependencies and disagree with each other on the HD95 and ASSD conventions, so the
conventions are stated below instead.

Empty masks (the rule every report states):

* both masks empty: the prediction is right; Dice = Jaccard = 1, Hausdorff = ASSD = 0;
* exactly one empty: Dice = Jaccard = 0, Hausdorff and ASSD are undefined (``nan``);
  :func:`summarise` leaves them out of the means and counts them as ``undefined``.

Classification: accuracy, precision, recall, F1 and confusion matrix through scikit-learn, per-label
ROC-AUC, and the RSNA haemorrhage competition's weighted log loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from workbench.errors import InputError

Spacing = Sequence[float] | None


def _pair(pred: ArrayLike, true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred).astype(bool), np.asarray(true).astype(bool)
    if pred.shape != true.shape:
        raise InputError(
            f"the prediction {pred.shape} and the ground truth {true.shape} differ in shape; "
            "compare masks of the same image."
        )
    return pred, true


def dice(pred: ArrayLike, true: ArrayLike, empty_value: float = 1.0) -> float:
    """2|P∩T| / (|P| + |T|); ``empty_value`` when both masks are empty."""
    pred, true = _pair(pred, true)
    total = pred.sum() + true.sum()
    return float(2 * (pred & true).sum() / total) if total else empty_value


def jaccard(pred: ArrayLike, true: ArrayLike, empty_value: float = 1.0) -> float:
    """|P∩T| / |P∪T|; ``empty_value`` when both masks are empty."""
    pred, true = _pair(pred, true)
    union = (pred | true).sum()
    return float((pred & true).sum() / union) if union else empty_value


def surface(mask: np.ndarray) -> np.ndarray:
    """The mask's boundary voxels: those an erosion with face connectivity removes.

    Voxels on the array's edge count as boundary (scipy erodes with a background border).
    """
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure)


def surface_distances(
    pred: ArrayLike, true: ArrayLike, spacing: Spacing = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each boundary voxel of ``pred`` to ``true``'s boundary, and back.

    Distances are between voxel centres, in the units of ``spacing`` (voxels when ``None``).
    Both masks must be non-empty.
    """
    pred, true = _pair(pred, true)
    if spacing is not None and len(spacing) != pred.ndim:
        raise InputError(
            f"spacing {tuple(spacing)} has {len(spacing)} values for a {pred.ndim}D mask; "
            "give one spacing per axis."
        )
    pred_surface, true_surface = surface(pred), surface(true)
    to_true = ndimage.distance_transform_edt(~true_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_true[pred_surface], to_pred[true_surface]


def hausdorff(
    pred: ArrayLike, true: ArrayLike, spacing: Spacing = None, percentile: float = 100
) -> float:
    """Symmetric Hausdorff distance; ``percentile=95`` gives HD95.

    HD_p = max(p-th percentile of the pred→true distances, p-th percentile of true→pred), the
    MONAI convention (medpy instead pools both directions before taking the percentile). See the
    module docstring for empty masks.
    """
    pred, true = _pair(pred, true)
    if not pred.any() or not true.any():
        return 0.0 if pred.any() == true.any() else float("nan")
    forward, backward = surface_distances(pred, true, spacing)
    return float(max(np.percentile(forward, percentile), np.percentile(backward, percentile)))


def assd(pred: ArrayLike, true: ArrayLike, spacing: Spacing = None) -> float:
    """Average symmetric surface distance: the mean over both boundaries' distances pooled.

    ASSD = (Σ d(p, T) + Σ d(t, P)) / (|∂P| + |∂T|) (Heimann et al. 2009). See the module
    docstring for empty masks.
    """
    pred, true = _pair(pred, true)
    if not pred.any() or not true.any():
        return 0.0 if pred.any() == true.any() else float("nan")
    forward, backward = surface_distances(pred, true, spacing)
    return float(np.concatenate([forward, backward]).mean())


def segmentation_scores(
    pred: ArrayLike, true: ArrayLike, spacing: Spacing = None
) -> dict[str, float]:
    """Dice, Jaccard, HD, HD95 and ASSD of one slice or volume."""
    return {
        "dice": dice(pred, true),
        "jaccard": jaccard(pred, true),
        "hd": hausdorff(pred, true, spacing),
        "hd95": hausdorff(pred, true, spacing, percentile=95),
        "assd": assd(pred, true, spacing),
    }


class Summary(NamedTuple):
    """Mean and (population) standard deviation over the defined values, and how many there were."""

    mean: float
    std: float
    n: int
    undefined: int


def summarise(rows: Sequence[Mapping[str, float]]) -> dict[str, Summary]:
    """Per metric name: mean ± std over the rows where it is defined (not ``nan``)."""
    summary = {}
    for name in dict.fromkeys(key for row in rows for key in row):
        values = np.array([row[name] for row in rows if name in row], dtype=float)
        defined = values[~np.isnan(values)]
        mean, std = (defined.mean(), defined.std()) if defined.size else (np.nan, np.nan)
        summary[name] = Summary(float(mean), float(std), defined.size, values.size - defined.size)
    return summary


def classification_summary(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class and averaged precision/recall/F1, and the confusion matrix.

    ``y_true`` and ``y_pred`` are class indices into ``labels``. Classes never predicted get
    precision 0 (not a warning). The confusion matrix has true classes as rows.
    """
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    summary: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=indices, average=average, zero_division=0
        )
        summary[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    summary["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=indices).tolist()
    summary["labels"] = list(labels)
    return summary


def multilabel_auc(y_true: ArrayLike, y_prob: ArrayLike, labels: Sequence[str]) -> dict[str, float]:
    """ROC-AUC per label column; ``nan`` for a label whose truth holds only one class."""
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    return {
        label: float(roc_auc_score(y_true[:, i], y_prob[:, i]))
        if len(np.unique(y_true[:, i])) == 2
        else float("nan")
        for i, label in enumerate(labels)
    }


def rsna_weighted_log_loss(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    weights: Sequence[float] = (2, 1, 1, 1, 1, 1),
    eps: float = 1e-7,
) -> float:
    """The RSNA Intracranial Hemorrhage competition's weighted multi-label log loss.

    Per image, the weighted mean of the six labels' binary cross-entropies (``any`` first, with
    weight 2), averaged over images; probabilities clipped to [eps, 1 - eps].
    """
    y_true = np.asarray(y_true, dtype=float)
    y_prob = np.clip(np.asarray(y_prob, dtype=float), eps, 1 - eps)
    bce = -(y_true * np.log(y_prob) + (1 - y_true) * np.log(1 - y_prob))
    return float((bce @ np.asarray(weights, dtype=float)).mean() / np.sum(weights))
