"""The MR contrast tab: the model's contrast class with Grad-CAM, and the DICOM header's guess."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.tasks import classify, contrast
from workbench.ui.classify import explained, shared_examples
from workbench.ui.common import UPLOAD_TYPES, examples, guarded, model_for, provenance, read_upload

EXAMPLES = (
    "contrast_phantom_T1_pre.png",
    "contrast_phantom_T1_post.png",
    "contrast_phantom_T2.png",
)
REAL = (
    "dicom/pydicom_3.0.2/MR_small.dcm",
    "dicom/DICOMSamples/MR_Implicit_Little.dcm",
    "dicom/dwv/bbmri-53323131.dcm",
    "datasets/brain_tumor_mri_44c/_NORMAL T1",
    "datasets/brain_tumor_mri_44c/Meningioma T1C+",
    "datasets/brain_tumor_mri_44c/_NORMAL T2",
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
    answer = contrast.predict(bundle, image)
    rgb, cam = explained(bundle, image, result.index)
    return rgb, cam, result.probabilities(), header_text(answer), answer, provenance(bundle)


def build() -> None:
    gr.Markdown(
        "Upload one MR slice (picture or DICOM). The model names its contrast (T1, T1 after "
        "gadolinium = T1C+, T2) and Grad-CAM shows where it looked. For DICOM files the header's "
        "repetition, echo and inversion times, contrast agent and series name give a second "
        "opinion, and disagreement is flagged."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="MR slice", file_types=UPLOAD_TYPES, type="filepath")
            run = gr.Button("Classify contrast", variant="primary")
            example_box = gr.Column()
        with gr.Column(scale=2):
            with gr.Row():
                slice_view = gr.Image(label="Slice", type="numpy", interactive=False)
                cam = gr.Image(
                    label="Grad-CAM of the predicted class",
                    type="numpy",
                    interactive=False,
                    elem_id="contrast-cam",
                )
            label = gr.Label(label="Contrast (image)", num_top_classes=4)
            header = gr.Markdown(elem_id="contrast-header")
            details = gr.JSON(label="Answer (as the CLI prints it)")
            about = gr.Markdown()
    outputs = [slice_view, cam, label, header, details, about]
    run.click(analyse, upload, outputs, api_name="contrast_classify", concurrency_id="models")
    upload.upload(analyse, upload, outputs, api_name=False, concurrency_id="models")
    with example_box:  # built after the outputs so that a click runs the example
        for files, label in (
            (examples(*EXAMPLES), "Examples (phantom slices)"),
            (shared_examples(*REAL), "Real files (../shared/data)"),
        ):
            if files:
                gr.Examples(
                    files,
                    inputs=upload,
                    outputs=outputs,
                    fn=analyse,
                    run_on_click=True,
                    cache_examples=False,
                    label=label,
                )
