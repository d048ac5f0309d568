"""Temperature scaling: one scalar per classifier that makes its probabilities mean what they say.

Label smoothing (the shipped recipes use 0.1) and early stopping leave a network's softmax too
timid or too sure; dividing the logits by one temperature fitted on held-out data by negative
log-likelihood fixes most of that without moving any prediction (Guo et al., 2017, "On
Calibration of Modern Neural Networks"). Written here because it is one scalar minimised with
scipy: torchmetrics measures calibration but fits nothing, and scikit-learn's
``CalibratedClassifierCV`` and ``calibration_curve`` wrap estimators and handle two classes only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar
from sklearn.model_selection import KFold, StratifiedKFold

# Bounds of the search: beyond them a model is broken rather than miscalibrated.
T_MIN, T_MAX = 0.05, 20.0


def fit_temperature(log_probs: ArrayLike, targets: ArrayLike) -> float:
    """The temperature ``T`` minimising the cross-entropy of ``softmax(log_probs / T)``.

    ``log_probs`` may be logits or log-softmax outputs ``(N, C)``: both give the same softmax.
    """
    z = torch.as_tensor(np.asarray(log_probs), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.long)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / np.exp(log_t), y))

    found = minimize_scalar(nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded")
    return float(np.exp(found.x))


def fit_temperatures(probs: torch.Tensor, targets: ArrayLike) -> list[float]:
    """One temperature per model of ``probs`` ``(N, M, C)`` (an ensemble's members)."""
    log_probs = probs.clamp_min(1e-12).log()
    return [fit_temperature(log_probs[:, m], targets) for m in range(probs.shape[1])]


def scale(probs: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Probabilities ``(..., C)`` after dividing their log by ``temperature`` (broadcast)."""
    return (probs.clamp_min(1e-12).log() / temperature).softmax(dim=-1)


def cross_fitted(probs: torch.Tensor, targets: ArrayLike, folds: int = 2) -> torch.Tensor:
    """``probs`` ``(N, M, C)`` of ``M`` models, each fold scaled with the temperatures fitted on
    the other folds: an honest view of how calibrated the scaled probabilities are on images no
    temperature saw (the in-sample view is optimistic). Folds are fixed, and stratified when
    every class has an image in each."""
    y = np.asarray(targets)
    out = torch.empty_like(probs)
    stratify = np.unique(y, return_counts=True)[1].min() >= folds
    kfold = (StratifiedKFold if stratify else KFold)(folds, shuffle=True, random_state=0)
    for fit_idx, held_idx in kfold.split(np.zeros(len(y)), y):
        t = fit_temperatures(probs[fit_idx], y[fit_idx])
        out[held_idx] = scale(probs[held_idx], torch.tensor(t, dtype=probs.dtype).view(-1, 1))
    return out


@dataclass(frozen=True)
class Reliability:
    """Per confidence bin: mean confidence, accuracy and the share of images in it."""

    confidence: np.ndarray
    accuracy: np.ndarray
    share: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the share-weighted gap between accuracy and confidence."""
        return float(np.sum(self.share * np.abs(self.accuracy - self.confidence)))


def reliability(probs: ArrayLike, targets: ArrayLike, bins: int = 15) -> Reliability:
    """Top-1 confidence against accuracy in ``bins`` equal-width bins over (0, 1] (empty bins
    are left out)."""
    p = np.asarray(probs, dtype=np.float64)
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == np.asarray(targets)
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    used = [b for b in range(bins) if np.any(which == b)]
    return Reliability(
        confidence=np.array([confidence[which == b].mean() for b in used]),
        accuracy=np.array([correct[which == b].mean() for b in used]),
        share=np.array([np.mean(which == b) for b in used]),
    )
