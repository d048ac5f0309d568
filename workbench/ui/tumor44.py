"""The Tumour type tab: top-5 of the 44 classes, tumour type and contrast marginals, Grad-CAM."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.tasks import classify, tumor44
from workbench.ui.classify import explained, shared_examples
from workbench.ui.common import UPLOAD_TYPES, examples, guarded, model_for, provenance, read_upload

EXAMPLES = (
    "tumor44_phantom_meningioma_T1C+.png",
    "tumor44_phantom_schwannoma_T2.png",
    "tumor44_phantom_normal_T1.png",
)
REAL = (
    "datasets/brain_tumor_mri_44c/Meningioma T1C+",
    "datasets/brain_tumor_mri_44c/Schwannoma T1C+",
    "datasets/brain_tumor_mri_44c/Glioblastoma T2",
    "datasets/brain_tumor_mri_44c/_NORMAL T1",
)


@guarded
def analyse(upload: Any) -> tuple[np.ndarray, np.ndarray, dict, dict, dict, str]:
    """Slice → (slice, Grad-CAM overlay, top-5, tumour type, contrast, provenance)."""
    image = read_upload(upload)
    bundle = model_for("tumor44")
    result = classify.classify(bundle, image)
    summary = tumor44.summarise(result)
    rgb, cam = explained(bundle, image, result.index)
    top5 = {row["label"]: row["probability"] for row in summary["top5"]}
    return (
        rgb,
        cam,
        top5,
        summary["tumor_type_probabilities"],
        summary["contrast_probabilities"],
        provenance(bundle),
    )


def build() -> None:
    gr.Markdown(
        "Upload one MR slice. The model picks among 44 classes (14 tumour types × T1 / T1C+ / "
        "T2, and normal T1 / T2); the tumour type and the contrast are also given on their own, "
        "each the sum of its classes' probabilities. Grad-CAM shows the evidence for the top "
        "class."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="MR slice", file_types=UPLOAD_TYPES, type="filepath")
            run = gr.Button("Classify tumour type", variant="primary")
            example_box = gr.Column()
        with gr.Column(scale=2):
            with gr.Row():
                slice_view = gr.Image(label="Slice", type="numpy", interactive=False)
                cam = gr.Image(
                    label="Grad-CAM of the top class",
                    type="numpy",
                    interactive=False,
                    elem_id="tumor44-cam",
                )
            top5 = gr.Label(label="Top 5 of 44 classes", num_top_classes=5)
            with gr.Row():
                kind = gr.Label(label="Tumour type (marginal)", num_top_classes=5)
                weighting = gr.Label(label="Contrast (marginal)", num_top_classes=3)
            about = gr.Markdown()
    outputs = [slice_view, cam, top5, kind, weighting, about]
    run.click(analyse, upload, outputs, api_name="tumor44_classify", concurrency_id="models")
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
