"""44-class tumour type × contrast of one MR slice, with the top 5 and both marginals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.tasks.base import TaskSpec, register

if TYPE_CHECKING:
    from workbench.io import Image
    from workbench.tasks.classify import Classification
    from workbench.weights import ModelBundle

TOP_K = 5


def _split(label: str) -> tuple[str, str | None]:
    from workbench.data.folders import split_44_label  # torch: on use, not at registration

    return split_44_label(label)


def contrast_of(label: str) -> str:
    return _split(label)[1] or "unknown"


def tumour_type(label: str) -> str:
    """The class's tumour type in English (``"Ependimoma T2"`` → ``"ependymoma"``)."""
    from workbench.io.layouts import TYPES_44

    kind = _split(label)[0]
    return TYPES_44.get(kind, kind.lower())


def display_name(label: str) -> str:
    """The class as the app shows it: ``"Neurocitoma T1C+"`` → ``"neurocytoma T1C+"``."""
    contrast = _split(label)[1]
    return f"{tumour_type(label)} {contrast}" if contrast else tumour_type(label)


def summarise(result: Classification) -> dict[str, Any]:
    """Top-5 classes (with their English names), and tumour type and contrast as sums over the
    44 probabilities."""
    types, contrasts = result.marginal(tumour_type), result.marginal(contrast_of)
    top = [{**row, "name": display_name(row["label"])} for row in result.top_k(TOP_K)]
    return {
        "top5": top,
        "tumor_type": next(iter(types)),
        "contrast": next(iter(contrasts)),
        "tumor_type_probabilities": types,
        "contrast_probabilities": contrasts,
    }


def predict(bundle: ModelBundle, image: Image) -> dict[str, Any]:
    from workbench.tasks.classify import answer, classify

    result = classify(bundle, image)
    return {**answer(bundle, image, result), **summarise(result)}


SPEC = register(
    TaskSpec(
        name="tumor44",
        title="Tumour type (44 classes)",
        predict=predict,
        phantom="workbench.phantom.layouts:write_tumor44",
        train="workbench.recipes.classifier:main",
        train_args=("tumor44",),
        tab="workbench.ui.tumor44:build",
        tab_title="Tumour type",
        endpoint="tumor44_classify",
        examples=(
            "tumor44_phantom_meningioma_T1C+.png",
            "tumor44_phantom_schwannoma_T2.png",
            "tumor44_phantom_normal_T1.png",
        ),
    )
)
