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

from workbench.ct import DEFAULT_CHANNELS, WINDOWS, is_picture
from workbench.errors import InputError
from workbench.render import overlay_heatmap, probability_bars
from workbench.tasks import hemorrhage
from workbench.ui.common import (
    guarded,
    model_for,
    provenance,
    shared_examples,
    upload_column,
    upload_path,
)

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
# Real RSNA slices the shipped model held out (weights/hemorrhage/split.json), as the
# brain-window PNGs they are: a subdural bleed and a normal slice.
REAL = tuple(
    f"datasets/rsna_ich_sample/stage_2_train/{name}.png"
    for name in ("ID_9a0ccf0da", "ID_210a1b750")
)


def _window_title(name: str) -> str:
    w = WINDOWS[name]
    return f"{name.replace('_', ' ')} {w.level:g}/{w.width:g}"


def _bars(labels: list[str], probs: np.ndarray) -> np.ndarray:
    shown = hemorrhage.as_dict(labels, probs)
    return probability_bars(shown, hemorrhage.THRESHOLD)


def _table(study: hemorrhage.Study) -> pd.DataFrame:
    """The per-slice answers the CLI's ``--study`` prints, with the radiologists' short names."""
    rows = []
    for k in range(len(study.images)):
        answer = study.slice_answer(k)
        z = answer["z_mm"]
        rows.append(
            {
                "slice": answer["slice"],
                "z (mm)": None if z is None else round(z, 1),
                "file": answer["file"],
                **{SHORT.get(label, label): p for label, p in answer["probabilities"].items()},
                "unsure": "yes" if answer["unsure"] else "",
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
    count = len(study.images)
    return (
        study,
        # one slice: nothing to browse (a slider needs two ends, so it would offer a slice 2)
        gr.Slider(1, max(2, count), value=first + 1, step=1, visible=count > 1),
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
            real = shared_examples(*REAL)
            if real:
                gr.Examples(
                    [[[f]] for f in real],
                    inputs=upload,
                    label="Real held-out RSNA slices (../shared/data): a subdural bleed, a normal",
                )
            number = gr.Slider(
                1,
                2,
                value=1,
                step=1,
                label="Slice (top of head → bottom; the most suspicious is shown first)",
                interactive=False,
            )
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
                bars = gr.Image(
                    label="Probabilities on this slice",
                    type="numpy",
                    interactive=False,
                    height=300,
                    elem_id="hemorrhage-bars",
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
    for control in (number.release, label.input):
        control(
            show, [study, number, label], view, api_visibility="private", concurrency_id="models"
        )
