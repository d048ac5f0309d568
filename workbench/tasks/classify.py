"""What the image-classification tasks share: probabilities, votes, top-k, marginals, Grad-CAM.

A classifier folder holds one timm model (logits ``(B, C)``) or an ensemble (``(B, M, C)``,
combined by :func:`workbench.models.ensemble_vote`); everything here handles both, so the
contrast, detection and 44-class tasks are a few lines each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench import ood
from workbench.explain import gradcam
from workbench.io import Image
from workbench.modality import REASON_CT, looks_like_head_ct
from workbench.model_config import ModelConfig
from workbench.models import ensemble_vote
from workbench.ood import members
from workbench.transforms.mr import Preprocess, to_tensor
from workbench.weights import ModelBundle


@dataclass(frozen=True)
class Classification:
    """One image's answer: the combined probabilities and, for an ensemble, each member's."""

    labels: list[str]
    probs: np.ndarray  # (C,)
    member_probs: np.ndarray  # (M, C); M = 1 for a single model
    member_names: list[str]
    check: dict[str, Any] = field(default_factory=dict)  # unsure, ood_score, reason (ood.verdict)

    @property
    def index(self) -> int:
        return int(self.probs.argmax())

    @property
    def label(self) -> str:
        return self.labels[self.index]

    def probabilities(self) -> dict[str, float]:
        return {c: round(float(p), 6) for c, p in zip(self.labels, self.probs, strict=True)}

    def top_k(self, k: int) -> list[dict[str, Any]]:
        order = np.argsort(-self.probs)[:k]
        return [
            {"label": self.labels[i], "probability": round(float(self.probs[i]), 6)} for i in order
        ]

    def marginal(self, key: Callable[[str], str]) -> dict[str, float]:
        """Probabilities summed over classes sharing ``key(label)`` (e.g. the tumour type)."""
        sums: dict[str, float] = {}
        for c, p in zip(self.labels, self.probs, strict=True):
            sums[key(c)] = sums.get(key(c), 0.0) + float(p)
        return {k: round(v, 6) for k, v in sorted(sums.items(), key=lambda kv: -kv[1])}

    def votes(self) -> list[dict[str, Any]]:
        """Each member's own answer (one entry for a single model)."""
        return [
            {
                "model": name,
                "label": self.labels[int(p.argmax())],
                "probability": round(float(p.max()), 6),
            }
            for name, p in zip(self.member_names, self.member_probs, strict=True)
        ]


def model_input(bundle: ModelBundle, image: Image) -> torch.Tensor:
    """The image as the model saw its training data: ``(1, C, H, W)`` on the model's device."""
    prep = Preprocess.from_dict(bundle.config.preprocess)
    return to_tensor(image.pixels, prep)[None].to(bundle.device)


def temperatures(bundle: ModelBundle) -> torch.Tensor:
    """``(M, 1)``: each member's temperature from ``config.json`` (1 where none was fitted)."""
    n = len(members(bundle.model))
    return _temperatures(bundle.config, n)


def _temperatures(config: ModelConfig, n: int) -> torch.Tensor:
    fitted = config.calibration.get("temperature", [1.0] * n)
    return torch.tensor(fitted, dtype=torch.float32).view(n, 1)


def calibrated(
    config: ModelConfig, logits: torch.Tensor, voting: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, [M,] C)`` → probabilities ``(N, C)`` (temperature-scaled, an ensemble's
    vote) and the confidence ``(N,)`` the floor is checked on: the members' mean calibrated
    probability of the answer (a hard vote's share is not a probability)."""
    if logits.ndim == 2:
        logits = logits[:, None]
    logits = logits.float() / _temperatures(config, logits.shape[1]).to(logits.device)
    voting = voting or config.model.args.get("voting", "soft")
    probs = ensemble_vote(logits, voting)[0] if logits.shape[1] > 1 else logits[:, 0].softmax(-1)
    mean = logits.softmax(-1).mean(1)
    return probs, mean.gather(1, probs.argmax(1, keepdim=True))[:, 0]


@torch.inference_mode()
def classify(bundle: ModelBundle, image: Image, voting: str | None = None) -> Classification:
    """Class probabilities of one image; an ensemble votes with ``voting`` (default: its own).
    Each member's logits are divided by its fitted temperature first (see
    :mod:`workbench.calibration`), so the probabilities shown are the calibrated ones. The same
    pass gives the features :func:`workbench.ood.verdict` judges the input by; a head CT slice
    is unsure whatever that score says (:mod:`workbench.modality`)."""
    feats, logits = ood.embed(bundle.model, model_input(bundle, image))
    logits = logits.float().cpu()
    voting = voting or getattr(bundle.model, "voting", "soft")
    probs, confidence = calibrated(bundle.config, logits, voting)
    scaled = logits / _temperatures(bundle.config, logits.shape[1])
    check = ood.verdict(
        bundle.config, bundle.folder, feats.cpu().numpy(), logits.numpy(), float(confidence[0])
    )
    if looks_like_head_ct(image):  # every classifier here reads MR (workbench.modality)
        reason = "; ".join(r for r in (REASON_CT, check["reason"]) if r)
        check = {**check, "unsure": True, "reason": reason}
    return Classification(
        labels=bundle.labels,
        probs=probs[0].numpy(),
        member_probs=scaled[0].softmax(-1).numpy(),
        member_names=bundle.config.model.member_names(),
        check=check,
    )


def explain(bundle: ModelBundle, image: Image, target: int) -> np.ndarray:
    """Grad-CAM of class ``target`` at the image's own size, in [0, 1]; an ensemble's is the
    mean of its members' maps (each explains its own evidence for the same class)."""
    x = model_input(bundle, image)
    heat = np.mean([gradcam(m, x, target) for m in members(bundle.model)], axis=0)
    heat = F.interpolate(
        torch.from_numpy(heat)[None, None], size=image.pixels.shape[:2], mode="bilinear"
    )[0, 0].numpy()
    return np.clip(heat / max(float(heat.max()), 1e-8), 0, 1)


def answer(bundle: ModelBundle, image: Image, result: Classification) -> dict[str, Any]:
    """The JSON fields every classification task prints."""
    return {
        "source": image.source,
        "label": result.label,
        "probabilities": result.probabilities(),
        "model": bundle.config.title,
        "weights": bundle.source,
        **result.check,
    }
