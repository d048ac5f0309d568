"""MR contrast of one slice (T1 / T1C+ / T2 / FLAIR, or a site's own classes) from the image,
and for DICOM input also from the header, with disagreement flagged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.tasks.base import TaskSpec, register
from workbench.tasks.contrast_rules import canonical, header_contrast

if TYPE_CHECKING:
    from workbench.io import Image
    from workbench.tasks.classify import Classification
    from workbench.weights import ModelBundle


def header_check(label: str, image: Image) -> dict[str, Any]:
    """The header's guess for a DICOM input and whether it agrees with the model's ``label``.

    ``agree`` is ``None`` when either side cannot be compared (no DICOM, no rule applies, or a
    class name outside T1/T1C+/T2/FLAIR).
    """
    if image.header.get("Format") != "DICOM":
        return {"header": None, "agree": None}
    guess = header_contrast(image.header)
    model = canonical(label)
    agree = None if guess is None or model is None else guess["contrast"] == model
    return {"header": guess, "agree": agree}


def predict(
    bundle: ModelBundle, image: Image, result: Classification | None = None
) -> dict[str, Any]:
    """The answer with the header's cross-check; ``result``: the image's classification when
    the caller (the tab, which also draws its Grad-CAM) has it already."""
    from workbench.tasks.classify import answer, classify  # torch: on use, not at registration

    result = result or classify(bundle, image)
    return {**answer(bundle, image, result), **header_check(result.label, image)}


SPEC = register(
    TaskSpec(
        name="contrast",
        title="MR contrast",
        predict=predict,
        phantom="workbench.phantom.layouts:write_contrast",
        train="workbench.recipes.classifier:main",
        train_args=("contrast",),
        tab="workbench.ui.contrast:build",
        tab_title="MR contrast",
        endpoint="contrast_classify",
        examples=(
            "contrast_phantom_T1_pre.png",
            "contrast_phantom_T1_post.png",
            "contrast_phantom_T2.png",
        ),
    )
)
