"""The Haemorrhage tab: head CT slices in, six probabilities per slice, windows and Grad-CAM.

One DICOM, several, a zip of a series, or brain-window PNG/JPEG slices. A slice the model is
unsure of (unlike its training slices, or too close to the threshold) says so first. Slices are
put in order along the head (by ImagePositionPatient, top first); the most suspicious one is
shown first, and the study-level answer is the maximum over slices.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from workbench.ct import DEFAULT_CHANNELS, WINDOWS, is_picture, slice_z
from workbench.errors import InputError
from workbench.render import overlay_heatmap
from workbench.tasks import hemorrhage
from workbench.ui.common import guarded, model_for, provenance, upload_column, upload_path

TASK = "hemorrhage"
# Radiologists' abbreviations: the table's headers then fit their columns without breaking.
SHORT = {
    "epidural": "EDH",
    "intraparenchymal": "IPH",
    "intraventricular": "IVH",
    "subarachnoid": "SAH",
    "subdural": "SDH",
}
EXAMPLES = hemorrhage.SPEC.examples


def _window_title(name: str) -> str:
    w = WINDOWS[name]
    return f"{name.replace('_', ' ')} {w.level:g}/{w.width:g}"


def _bars(labels: list[str], probs: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": labels, "probability": [float(p) for p in probs]})


def _table(study: hemorrhage.Study) -> pd.DataFrame:
    rows = []
    for k, image in enumerate(study.images):
        z = slice_z(image)
        rows.append(
            {
                "slice": k + 1,
                "z (mm)": None if z is None else round(z, 1),
                "file": image.source,
                **{
                    SHORT.get(label, label): p
                    for label, p in hemorrhage.as_dict(study.labels, study.probs[k]).items()
                },
                "unsure": "yes" if study.verdicts[k]["unsure"] else "",
            }
        )
    return pd.DataFrame(rows)


def _default_label(labels: list[str], probs: np.ndarray) -> str:
    """The subtype to explain first: the most probable one, or ``any`` when none is likely."""
    best = 1 + int(np.argmax(probs[1:]))
    return labels[best] if probs[best] >= hemorrhage.THRESHOLD else labels[0]


def _view(study: hemorrhage.Study, k: int, label: str) -> tuple:
    bundle = model_for(TASK)
    image = study.images[k]
    views = hemorrhage.window_views(image, DEFAULT_CHANNELS)
    heat = hemorrhage.gradcam_map(bundle, image, label)
    cam = overlay_heatmap(views[0], heat)
    verdict = study.verdicts[k]
    unsure = f"**Unsure: {verdict['reason']}.** " if verdict["unsure"] else ""
    picture = ""
    if is_picture(image):  # only the brain window is in it: the others would mislead
        views = [views[0], None, None]
        picture = " A PNG/JPEG slice holds the brain window only; the other windows need DICOM."
    return (
        *views,
        _bars(study.labels, study.probs[k]),
        cam,
        f"{unsure}**Showing slice {k + 1} of {len(study.images)}** ({study.slice_label(k)}); "
        f"Grad-CAM for **{label}**.{picture}",
    )


@guarded
def analyse(files: list[Any] | None) -> tuple:
    """Upload → (study state, slice choice, subtype, 3 windows, bars, Grad-CAM, caption,
    per-slice table, study summary, provenance)."""
    if not files:
        raise InputError(
            "no file given: upload head CT DICOM files, a zip of a series or brain-window PNGs."
        )
    paths = [upload_path(f) for f in files]
    bundle = model_for(TASK)
    with tempfile.TemporaryDirectory(prefix="wb_hem_") as tmp:
        study = hemorrhage.read_study(bundle, paths, Path(tmp))
    first = study.first
    label = _default_label(study.labels, study.probs[first])
    summary = study.summary()
    slices = [(f"{k + 1}: {study.slice_label(k)}", k + 1) for k in range(len(study.images))]
    return (
        study,
        gr.Dropdown(choices=slices, value=first + 1),
        gr.Dropdown(choices=study.labels, value=label),
        *_view(study, first, label),
        _table(study),
        summary,
        provenance(bundle),
    )


@guarded
def show(study: hemorrhage.Study | None, number: float, label: str) -> tuple:
    """Another slice or subtype of the analysed study."""
    if study is None:
        raise InputError("analyse an upload first: click Analyse after choosing files.")
    k = int(np.clip(round(number) - 1, 0, len(study.images) - 1))
    return _view(study, k, label or study.labels[0])


def build() -> None:
    gr.Markdown(
        "Upload one head CT slice (DICOM, or a PNG/JPEG in the brain window, level 40 / width "
        "80), several, or a zip of a series. Each slice gets six "
        "probabilities (`any` and the five subtypes); the slices are ordered from the top of "
        "the head down, the most suspicious is shown first, and the study-level answer is the "
        "maximum over slices. Grad-CAM shows where the model found evidence for a subtype."
    )
    study = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            upload, run = upload_column(
                "CT DICOM file(s), brain-window PNG/JPEG, or a zip of a series",
                multiple=True,
                elem_id="hemorrhage-upload",
                button="Analyse",
                example_names=EXAMPLES,
                examples_label="Examples (phantom CT)",
            )
            number = gr.Dropdown(choices=[("1", 1)], value=1, label="Slice (top of head → bottom)")
            label = gr.Dropdown(
                choices=["any"], value="any", label="Grad-CAM for", allow_custom_value=False
            )
            summary = gr.JSON(label="Study (maximum over slices)")
        with gr.Column(scale=3):
            caption = gr.Markdown()
            with gr.Row():
                windows = [
                    gr.Image(label=_window_title(n), type="numpy", interactive=False, height=300)
                    for n in DEFAULT_CHANNELS
                ]
            with gr.Row():
                bars = gr.BarPlot(
                    x="label",
                    y="probability",
                    y_lim=[0, 1],
                    title="Probabilities on this slice",
                    height=300,
                    sort=None,
                    x_label_angle=-30,
                )
                cam = gr.Image(
                    label="Grad-CAM (brain window)",
                    type="numpy",
                    interactive=False,
                    height=300,
                    elem_id="hemorrhage-cam",
                )
            table = gr.Dataframe(
                label="Per slice, in order along the head (EDH epidural, IPH intraparenchymal, "
                "IVH intraventricular, SAH subarachnoid, SDH subdural)",
                wrap=True,
            )
            about = gr.Markdown()
    view = [*windows, bars, cam, caption]
    run.click(
        analyse,
        upload,
        [study, number, label, *view, table, summary, about],
        api_name="hemorrhage_analyse",
        concurrency_id="models",
    )
    for control in (number.input, label.input):
        control(
            show, [study, number, label], view, api_visibility="private", concurrency_id="models"
        )
