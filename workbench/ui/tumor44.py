"""The Tumour type tab: top-5 of the 44 classes, tumour type and contrast marginals, Grad-CAM."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.tasks import classify, tumor44
from workbench.ui.classify import (
    ClassifierTab,
    build_classifier_tab,
    explained,
    unsure_note,
)
from workbench.ui.common import guarded, model_for, provenance, read_upload

EXAMPLES = tumor44.SPEC.examples
# Held out of training, as in ui/tumor.py.
REAL = tuple(
    f"datasets/brain_tumor_mri_44c/{f}"
    for f in (
        "Meningioma T1C+/2022-05-28 10_47_04-Meningioma _ Radiology Case _ Radiopaedia.org - "
        "Opera.jpg",
        "Schwannoma T1C+/100_big_gallery.jpeg",
        "Glioblastoma T2/8a961403df6f1e73caa8f2101182e7_big_gallery.jpeg",
        "_NORMAL T1/2022-06-13 09_37_58-Normal MRI brain _ Radiology Case _ Radiopaedia.org.jpg",
    )
)

TOP5 = "Top 5 of 44 classes"
TAB = ClassifierTab(
    intro=(
        "Upload one MR slice. The model picks among 44 classes (14 tumour types × T1 / T1C+ / "
        "T2, and normal T1 / T2; the dataset's folder names, such as Ependimoma, are shown in "
        "English); the tumour type and the contrast are also given on their own, "
        "each the sum of its classes' probabilities. Grad-CAM shows the evidence for the top "
        "class."
    ),
    button="Classify tumour type",
    cam_label="Grad-CAM of the top class",
    cam_id="tumor44-cam",
    api_name="tumor44_classify",
)


@guarded
def analyse(upload: Any) -> tuple[np.ndarray, np.ndarray, dict, dict, dict, str]:
    """Slice → (slice, Grad-CAM overlay, top-5, tumour type, contrast, provenance)."""
    image = read_upload(upload)
    bundle = model_for("tumor44")
    result = classify.classify(bundle, image)
    summary = tumor44.summarise(result)
    rgb, cam = explained(bundle, image, result.index)
    top5 = {row["name"]: row["probability"] for row in summary["top5"]}
    return (
        rgb,
        cam,
        top5,
        summary["tumor_type_probabilities"],
        summary["contrast_probabilities"],
        unsure_note(result) + provenance(bundle),
    )


def _answers() -> list[gr.components.Component]:
    """The top 5 of the 44 classes, then the tumour type and contrast marginals side by side."""
    top5 = gr.Label(label=TOP5, num_top_classes=5)
    with gr.Row():
        kind = gr.Label(label="Tumour type (marginal)", num_top_classes=5)
        weighting = gr.Label(label="Contrast (marginal)", num_top_classes=3)
    return [top5, kind, weighting]


def build() -> None:
    build_classifier_tab(TAB, analyse, _answers, EXAMPLES, REAL)
