"""Tumour / no tumour on one MR slice by an ensemble's vote (the detection study's pipeline)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.tasks.base import TaskSpec, register

if TYPE_CHECKING:
    from workbench.io import Image
    from workbench.weights import ModelBundle

POSITIVE = "tumor"


def predict(bundle: ModelBundle, image: Image, voting: str | None = None) -> dict[str, Any]:
    """``label`` is ``tumor`` or ``no_tumor``; ``votes`` gives each member's own answer."""
    from workbench.tasks.classify import answer, classify  # torch: on use, not at registration

    result = classify(bundle, image, voting)
    return {
        **answer(bundle, image, result),
        "voting": voting or getattr(bundle.model, "voting", "single model"),
        "votes": result.votes(),
    }


SPEC = register(
    TaskSpec(
        name="tumor_detect",
        title="Brain tumour detection",
        predict=predict,
        phantom="workbench.phantom.layouts:write_tumor_detect",
        train="workbench.recipes.classifier:main",
        train_args=("tumor_detect",),
        tab="workbench.ui.tumor:build",  # detection, then segmentation of what it found
        tab_title="Brain tumour",
        endpoint="tumor_detect",
        examples=("tumor_detect_phantom_glioma.jpg", "tumor_detect_phantom_notumor.jpg"),
    )
)
