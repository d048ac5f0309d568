"""What the classifier tabs share: Grad-CAM pictures, real example files found at runtime, and
the layout of a one-slice classifier tab."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np

from workbench.io import Image
from workbench.render import enlarge, overlay_heatmap, to_rgb
from workbench.tasks import classify
from workbench.ui.common import examples, shared_examples, upload_box
from workbench.weights import ModelBundle


def explained(bundle: ModelBundle, image: Image, target: int) -> tuple[np.ndarray, np.ndarray]:
    """The slice for display and the Grad-CAM map of class ``target`` blended over it, both
    enlarged when the slice is small."""
    rgb = to_rgb(image.pixels)
    return enlarge(rgb), enlarge(overlay_heatmap(rgb, classify.explain(bundle, image, target)))


def unsure_note(result: classify.Classification) -> str:
    """A bold first line for the tab's text when the model is unsure, else nothing."""
    check = result.check
    return (
        f"**⚠ Unsure: {check['reason']}.** The label is only a guess.\n\n"
        if check.get("unsure")
        else ""
    )


@dataclass(frozen=True)
class ClassifierTab:
    """The words and names that tell one classifier tab from another (tests find it by them)."""

    intro: str  # markdown above the upload
    button: str
    cam_label: str
    cam_id: str  # elem_id of the Grad-CAM picture
    api_name: str  # the button's gradio_client endpoint


def build_classifier_tab(
    tab: ClassifierTab,
    analyse: Callable[[Any], tuple[Any, ...]],
    answers: Callable[[], list[gr.components.Component]],
    phantoms: tuple[str, ...],
    real: tuple[str, ...],
) -> None:
    """One MR slice in; the slice, its Grad-CAM, the task's ``answers`` and the provenance out.

    ``answers`` builds the task's own outputs under the two pictures, and ``analyse`` returns
    (slice, Grad-CAM, *answers, provenance) in that order. It runs on the button, on upload,
    and on a click on a phantom example (``examples/``) or a real one (``../shared/data``).
    """
    gr.Markdown(tab.intro)
    with gr.Row():
        with gr.Column(scale=1):
            upload = upload_box("MR slice")
            run = gr.Button(tab.button, variant="primary")
            example_box = gr.Column()
        with gr.Column(scale=2):
            with gr.Row():
                slice_view = gr.Image(label="Slice", type="numpy", interactive=False)
                cam = gr.Image(
                    label=tab.cam_label, type="numpy", interactive=False, elem_id=tab.cam_id
                )
            outputs = [slice_view, cam, *answers(), gr.Markdown()]
    run.click(analyse, upload, outputs, api_name=tab.api_name, concurrency_id="models")
    upload.upload(analyse, upload, outputs, api_visibility="private", concurrency_id="models")
    with example_box:  # built after the outputs so that a click runs the example
        for files, label in (
            (shared_examples(*real), "Real files (../shared/data)"),
            (examples(*phantoms), "Phantom slices (synthetic: the model learnt from real MR)"),
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
