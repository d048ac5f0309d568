"""44-class tumour type × contrast of one MR slice, with the top 5 and both marginals."""

from __future__ import annotations

from typing import Any

from workbench.data.folders import split_44_label, tumour_type_of
from workbench.io import Image
from workbench.tasks.base import TaskSpec
from workbench.tasks.classify import Classification, answer, classify
from workbench.weights import ModelBundle

TOP_K = 5


def contrast_of(label: str) -> str:
    return split_44_label(label)[1] or "unknown"


def summarise(result: Classification) -> dict[str, Any]:
    """Top-5 classes, and tumour type and contrast as sums over the 44 probabilities."""
    types, contrasts = result.marginal(tumour_type_of), result.marginal(contrast_of)
    return {
        "top5": result.top_k(TOP_K),
        "tumor_type": next(iter(types)),
        "contrast": next(iter(contrasts)),
        "tumor_type_probabilities": types,
        "contrast_probabilities": contrasts,
    }


def predict(bundle: ModelBundle, image: Image) -> dict[str, Any]:
    result = classify(bundle, image)
    return {**answer(bundle, image, result), **summarise(result)}


SPEC = TaskSpec(name="tumor44", title="Tumour type (44 classes)", predict=predict)
