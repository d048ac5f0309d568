"""The MR contrast tab: the model's contrast class with Grad-CAM, and the DICOM header's guess."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.tasks import classify, contrast
from workbench.ui.classify import (
    ClassifierTab,
    build_classifier_tab,
    explained,
    unsure_note,
)
from workbench.ui.common import guarded, model_for, provenance, read_upload

EXAMPLES = contrast.SPEC.examples
# Real DICOMs (for the header check), then slices as in ui/tumor.py: held out of training.
REAL = (
    "dicom/pydicom_3.0.2/MR_small.dcm",
    "dicom/DICOMSamples/MR_Implicit_Little.dcm",
    "dicom/dwv/bbmri-53323131.dcm",
    "datasets/brain_tumor_mri_44c/_NORMAL T1/"
    "2022-06-13 09_37_49-Normal MRI brain _ Radiology Case _ Radiopaedia.org.jpg",
    "datasets/brain_tumor_mri_44c/Meningioma T1C+/0268b86dc78b0861e1b339ce9eb127_big_gallery.jpg",
    "datasets/brain_tumor_mri_44c/_NORMAL T2/0a7d683c5c79a4e89628b92e990cbe_big_gallery.jpeg",
)

LABEL = "Contrast (image)"
TAB = ClassifierTab(
    intro=(
        "Upload one MR slice (picture or DICOM). The model names its contrast (T1, T1 after "
        "gadolinium = T1C+, T2, FLAIR) and Grad-CAM shows where it looked. For DICOM files the "
        "header's repetition, echo and inversion times, contrast agent and series name give a "
        "second opinion, and disagreement is flagged."
    ),
    button="Classify contrast",
    cam_label="Grad-CAM of the predicted class",
    cam_id="contrast-cam",
    api_name="contrast_classify",
)


def header_text(answer: dict[str, Any]) -> str:
    """One paragraph: what the header says, why, and whether it agrees with the model."""
    header = answer["header"]
    if header is None:
        return "No DICOM header to cross-check (a picture file, or no rule fits the header)."
    times = ", ".join(
        f"{k.removesuffix('Time')} {v:g} ms"
        for k, v in header["values_ms"].items()
        if v is not None
    )
    agent = f"; {header['contrast_agent']}" if header["contrast_agent"] else ""
    verdict = {
        True: "✅ header and image agree.",
        False: "⚠️ **header and image disagree**: check the series (or the model's classes).",
        None: "The model's classes cannot be compared with the header's.",
    }[answer["agree"]]
    return (
        f"**Header says {header['contrast']}** ({header['rule']}{agent}; {times or 'no times'}). "
        f"**Image says {answer['label']}**. {verdict}"
    )


@guarded
def analyse(upload: Any) -> tuple[np.ndarray, np.ndarray, dict, str, dict, str]:
    """Slice → (slice, Grad-CAM overlay, probabilities, header check, JSON answer, provenance)."""
    image = read_upload(upload)
    bundle = model_for("contrast")
    result = classify.classify(bundle, image)
    answer = contrast.predict(bundle, image, result)  # one pass of the model, not two
    rgb, cam = explained(bundle, image, result.index)
    return (
        rgb,
        cam,
        result.probabilities(),
        unsure_note(result) + header_text(answer),
        answer,
        provenance(bundle),
    )


def _answers() -> list[gr.components.Component]:
    """The image's contrast, the DICOM header's cross-check, and the answer as the CLI prints it."""
    return [
        gr.Label(label=LABEL, num_top_classes=4),
        gr.Markdown(elem_id="contrast-header"),
        gr.JSON(label="Answer (as the CLI prints it)"),
    ]


def build() -> None:
    build_classifier_tab(TAB, analyse, _answers, EXAMPLES, REAL)
