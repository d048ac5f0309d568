"""The Brain tumour tab: upload a slice, see the tumour mask drawn over it and its area."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.render import overlay_mask, to_rgb
from workbench.tasks import tumor_seg
from workbench.ui.common import UPLOAD_TYPES, examples, guarded, model_for, provenance, read_upload

EXAMPLES = ("tumor_seg_phantom_1.tif", "tumor_seg_phantom_2.tif", "tumor_seg_phantom_empty.tif")


@guarded
def analyse(upload: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
    """Slice → (slice picture, overlay picture, measurements, provenance)."""
    image = read_upload(upload)
    bundle = model_for("tumor_seg")
    mask = tumor_seg.segment(bundle, image)
    rgb = to_rgb(image.pixels)
    summary = tumor_seg.summarise_mask(mask, image)
    return rgb, overlay_mask(rgb, mask), summary, provenance(bundle)


def build() -> None:
    gr.Markdown(
        "Upload one axial brain MR slice: PNG, JPG, TIF (such as the LGG `kaggle_3m` 3-channel "
        "tifs: pre-contrast, FLAIR, post-contrast) or DICOM. The model outlines the tumour and "
        "measures its area (in mm² when the file carries its pixel spacing)."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="MR slice", file_types=UPLOAD_TYPES, type="filepath")
            run = gr.Button("Segment", variant="primary")
            example_box = gr.Column()
        with gr.Column(scale=2):
            with gr.Row():
                slice_view = gr.Image(label="Slice", type="numpy", interactive=False)
                overlay = gr.Image(
                    label="Predicted tumour (outline + fill)",
                    type="numpy",
                    interactive=False,
                    elem_id="tumor-overlay",
                )
            measures = gr.JSON(label="Measurements")
            about = gr.Markdown()
    outputs = [slice_view, overlay, measures, about]
    run.click(analyse, upload, outputs, api_name="tumor_segment", concurrency_id="models")
    upload.upload(analyse, upload, outputs, api_name=False, concurrency_id="models")
    with example_box:
        gr.Examples(
            examples(*EXAMPLES),
            inputs=upload,
            outputs=outputs,
            fn=analyse,
            run_on_click=True,
            cache_examples=False,
            label="Examples (phantom slices)",
        )
