"""Tumour / no tumour on one MR slice by an ensemble's vote (the detection study's pipeline)."""

from __future__ import annotations

from typing import Any

from workbench.io import Image
from workbench.tasks.base import TaskSpec
from workbench.tasks.classify import answer, classify
from workbench.weights import ModelBundle

POSITIVE = "tumor"


def predict(bundle: ModelBundle, image: Image, voting: str | None = None) -> dict[str, Any]:
    """``label`` is ``tumor`` or ``no_tumor``; ``votes`` gives each member's own answer."""
    result = classify(bundle, image, voting)
    return {
        **answer(bundle, image, result),
        "voting": voting or getattr(bundle.model, "voting", "single model"),
        "votes": result.votes(),
    }


SPEC = TaskSpec(name="tumor_detect", title="Brain tumour detection", predict=predict)
