"""The Brain tumour tab, the detection study's pipeline: an ensemble votes tumour / no tumour
(each member's vote and the verdict's Grad-CAM shown), then, for a tumour, segmentation draws
the mask over the slice and measures its area. "Segment only" skips the vote."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from workbench.io import Image
from workbench.render import overlay_mask, to_rgb
from workbench.tasks import classify, tumor_detect, tumor_seg
from workbench.ui.classify import explained, shared_examples
from workbench.ui.common import (
    examples,
    guarded,
    model_for,
    provenance,
    read_upload,
    upload_box,
)

EXAMPLES = ("tumor_seg_phantom_1.tif", "tumor_seg_phantom_2.tif", "tumor_seg_phantom_empty.tif")
DETECT_EXAMPLES = ("tumor_detect_phantom_glioma.jpg", "tumor_detect_phantom_notumor.jpg")
# Real slices the shipped model held out of training (its weights/<task>/split.json): the first
# of each folder in name order that it gets right; its card shows the errors too.
REAL = tuple(
    f"datasets/brain_tumor_mri/Training/{f}"
    for f in ("glioma/Tr-gl_0015.jpg", "notumor/Tr-no_0011.jpg", "pituitary/Tr-pi_0016.jpg")
)
VOTE_COLUMNS = ["model", "vote", "probability"]
SEGMENTATION_MISSED = (
    "no tumour pixels, though the ensemble voted tumour: the two models disagree. Read the "
    "segmentation model's card (below) for what it learnt; on other kinds of MR it may miss "
    "what the classifiers see."
)


def segmentation(image: Image) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
    """Slice → (slice picture, overlay picture, measurements, provenance)."""
    bundle = model_for("tumor_seg")
    mask = tumor_seg.segment(bundle, image)
    rgb = to_rgb(image.pixels)
    summary = tumor_seg.summarise_mask(mask, image)
    return rgb, overlay_mask(rgb, mask), summary, provenance(bundle)


@guarded
def analyse(upload: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
    return segmentation(read_upload(upload))


@guarded
def detect_then_segment(upload: Any, voting: str = "hard") -> tuple[Any, ...]:
    """Slice → (slice, overlay, measurements, provenance, verdict, votes, Grad-CAM).

    Segmentation runs only when the ensemble's verdict is tumour, as in the study's pipeline;
    otherwise the overlay is the bare slice and the measurements say why.
    """
    image = read_upload(upload)
    detector = model_for("tumor_detect")
    result = classify.classify(detector, image, voting)
    votes = [[v["model"], v["label"], v["probability"]] for v in result.votes()]
    rgb, cam = explained(detector, image, result.index)
    about = provenance(detector)
    if result.label != tumor_detect.POSITIVE:
        summary = {"tumor_found": False, "segmentation": "skipped: the ensemble voted no tumour"}
        return rgb, rgb, summary, about, result.probabilities(), votes, cam
    rgb, overlay, summary, seg_about = segmentation(image)
    if not summary["tumor_found"]:
        summary["segmentation"] = SEGMENTATION_MISSED
    return rgb, overlay, summary, f"{about}<br>{seg_about}", result.probabilities(), votes, cam


def build() -> None:
    gr.Markdown(
        "Upload one axial brain MR slice: PNG, JPG, TIF (such as the LGG `kaggle_3m` 3-channel "
        "tifs: pre-contrast, FLAIR, post-contrast) or DICOM. An ensemble of three classifiers "
        "votes tumour / no tumour (Grad-CAM shows the verdict's evidence); for a tumour the "
        "segmentation model outlines it and measures its area (in mm² when the file carries its "
        "pixel spacing). *Segment only* skips the vote."
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload = upload_box("MR slice")
            voting = gr.Radio(
                ["hard", "soft"],
                value="hard",
                label="Ensemble voting",
                info=(
                    "hard: majority of the members' votes (the verdict's bar is the vote share, "
                    "with their mean probability as a tie-breaking extra vote); soft: mean "
                    "probability"
                ),
            )
            detect = gr.Button("Detect, then segment", variant="primary")
            run = gr.Button("Segment only")
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
            with gr.Row():
                verdict = gr.Label(label="Ensemble verdict", elem_id="tumor-verdict")
                cam = gr.Image(
                    label="Grad-CAM of the verdict (members' mean)",
                    type="numpy",
                    interactive=False,
                    elem_id="tumor-cam",
                )
            votes = gr.Dataframe(headers=VOTE_COLUMNS, label="Each member's vote")
            measures = gr.JSON(label="Measurements")
            about = gr.Markdown()
    outputs = [slice_view, overlay, measures, about]
    pipeline = [*outputs, verdict, votes, cam]
    detect.click(
        detect_then_segment,
        [upload, voting],
        pipeline,
        api_name="tumor_detect",
        concurrency_id="models",
    )
    run.click(analyse, upload, outputs, api_name="tumor_segment", concurrency_id="models")
    upload.upload(
        detect_then_segment,
        [upload, voting],
        pipeline,
        api_visibility="private",
        concurrency_id="models",
    )
    with example_box:
        gr.Examples(
            examples(*EXAMPLES),
            inputs=upload,
            outputs=outputs,
            fn=analyse,
            run_on_click=True,
            cache_examples=False,
            label="Segmentation examples (phantom LGG slices)",
        )
        for files, label in (
            (shared_examples(*REAL), "Real slices (../shared/data)"),
            (examples(*DETECT_EXAMPLES), "Phantom slices (synthetic; detection learnt real MR)"),
        ):
            if files:
                gr.Examples(
                    [[f, "hard"] for f in files],
                    inputs=[upload, voting],
                    outputs=pipeline,
                    fn=detect_then_segment,
                    run_on_click=True,
                    cache_examples=False,
                    label=label,
                )
