"""The Brain tumour tab, the detection study's pipeline: an ensemble votes tumour / no tumour
(each member's vote and the verdict's Grad-CAM shown), then, for a tumour, segmentation draws
the mask over the slice and measures its area. "Segment only" skips the vote. A whole patient (a
zip of slices or of a DICOM series, a NIfTI volume) is segmented through the volume, browsed
slice by slice from the largest tumour, and downloaded as NIfTI, PNGs and a CSV/JSON report."""

from __future__ import annotations

import csv
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import nibabel as nib
import numpy as np

from workbench.errors import InputError
from workbench.io import Image
from workbench.render import overlay_mask, to_rgb
from workbench.tasks import tumor_detect, tumor_pipeline, tumor_seg
from workbench.ui.classify import explained, unsure_note
from workbench.ui.common import (
    examples,
    guarded,
    model_for,
    provenance,
    read_upload,
    result_folder,
    shared_examples,
    upload_box,
    upload_path,
)

# The tasks' example files: segmentation's single slices and its whole patient (the zip), and
# detection's slices.
EXAMPLES = tuple(n for n in tumor_seg.SPEC.examples if not n.endswith(".zip"))
(VOLUME_EXAMPLE,) = (n for n in tumor_seg.SPEC.examples if n.endswith(".zip"))
DETECT_EXAMPLES = tumor_detect.SPEC.examples
# Real slices the shipped model held out of training (its weights/<task>/split.json): the first
# of each folder in name order that it gets right; its card shows the errors too.
REAL = tuple(
    f"datasets/brain_tumor_mri/Training/{f}"
    for f in ("glioma/Tr-gl_0015.jpg", "notumor/Tr-no_0011.jpg", "pituitary/Tr-pi_0016.jpg")
)
VOTE_COLUMNS = ["model", "vote", "probability"]


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
    detector, segmenter = model_for("tumor_detect"), model_for("tumor_seg")
    result = tumor_pipeline.detect_then_segment(detector, segmenter, image, voting)
    verdict = result.verdict
    votes = [[v["model"], v["label"], v["probability"]] for v in verdict.votes()]
    rgb, cam = explained(detector, image, verdict.index)
    about = unsure_note(verdict) + provenance(detector)
    if result.mask is None:
        return rgb, rgb, result.measurements, about, verdict.probabilities(), votes, cam
    overlay = overlay_mask(rgb, result.mask)
    about = f"{about}<br>{provenance(segmenter)}"
    return rgb, overlay, result.measurements, about, verdict.probabilities(), votes, cam


VERDICT = "Ensemble verdict"
SLICE_COLUMNS = ["slice", "tumour px", "ensemble vote", "p(tumour)"]


@dataclass(frozen=True)
class Patient:
    """A segmented volume kept for the slice browser: display pictures and the mask."""

    rgb: np.ndarray  # (Z, H, W, 3) uint8
    mask: np.ndarray  # (Z, H, W) bool


def _slice_view(patient: Patient, number: float) -> np.ndarray:
    z = int(np.clip(round(number) - 1, 0, len(patient.mask) - 1))
    return overlay_mask(patient.rgb[z], patient.mask[z])


def _votes(volume: tumor_seg.Volume) -> list[list[Any]]:
    """Each slice's ensemble vote (hard) and calibrated p(tumour), as the single-slice path."""
    rows = tumor_pipeline.slice_votes(model_for("tumor_detect"), volume)
    return [[r["vote"] + (" (unsure)" if r["unsure"] else ""), r["p_tumor"]] for r in rows]


def _downloads(volume: tumor_seg.Volume, result: tumor_seg.VolumeResult, table: list) -> list[str]:
    """Mask as NIfTI (the input's affine) and as one 0/255 PNG per slice (zipped), the report as
    JSON and CSV, in a download folder of this request's own."""
    folder = result_folder("tumor_volume_")
    stem = Path(volume.source).name.split(".")[0] or "patient"
    nifti = folder / f"{stem}_mask.nii.gz"
    nib.save(tumor_seg.mask_nifti(volume, result.mask), nifti)
    pngs = folder / f"{stem}_mask_png.zip"
    with zipfile.ZipFile(pngs, "w") as z, tempfile.TemporaryDirectory() as tmp:
        for k, mask in enumerate(result.mask):
            path = Path(tmp) / f"{stem}_{k + 1:03d}_mask.png"
            tumor_seg.mask_png(mask).save(path)
            z.write(path, path.name)
    report = folder / f"{stem}_report.json"
    report.write_text(json.dumps({**result.summary, "per_slice": table}, indent=2) + "\n")
    per_slice = folder / f"{stem}_slices.csv"
    with per_slice.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SLICE_COLUMNS)
        writer.writerows(table)
    return [str(p) for p in (nifti, pngs, report, per_slice)]


@guarded
def analyse_volume(
    upload: Any,
    voxel: str = "",
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple:
    """A whole patient → (browser state, slider, overlay of the largest-tumour slice, summary,
    per-slice table, downloads, provenance). ``voxel``: the voxel size of slice pictures."""
    path = upload_path(upload)
    voxel_mm = tumor_seg.voxel_size(voxel)  # a typo fails before the slow part
    progress(0.0, desc="reading the volume")
    with tempfile.TemporaryDirectory(prefix="volume_") as tmp:
        volume = tumor_seg.read_volume(path, Path(tmp), voxel_mm)
    bundle = model_for("tumor_seg")
    result = tumor_seg.segment_volume(
        bundle, volume, lambda done, total: progress(done / total, desc=f"segmented {done}/{total}")
    )
    progress(0.9, desc="ensemble vote per slice")
    votes = _votes(volume)
    table = [[k + 1, a, *v] for k, (a, v) in enumerate(zip(result.areas_px, votes, strict=True))]
    patient = Patient(np.stack([to_rgb(s) for s in volume.slices]), result.mask)
    number = result.summary["largest_slice"] or 1
    slider = gr.Slider(1, max(2, len(table)), value=number, step=1, interactive=True)
    return (
        patient,
        slider,
        _slice_view(patient, number),
        result.summary,
        table,
        _downloads(volume, result, table),
        provenance(bundle),
    )


@guarded
def show_slice(patient: Patient | None, number: float) -> np.ndarray:
    if patient is None:
        raise InputError("segment a patient first: upload the volume and click Segment volume.")
    return _slice_view(patient, number)


def build_volume() -> None:
    """The whole-patient section."""
    gr.Markdown(
        "### Whole patient\nUpload a patient: a **zip of `kaggle_3m` slices** (with their "
        "`_mask.tif` files the report also scores Dice, Jaccard, HD95 and ASSD against them), "
        "a **zip of one DICOM series**, or a **NIfTI volume** (FLAIR, or three co-registered "
        "sequences as a 4D file). Every slice is segmented, specks are removed in 3D, and the "
        "browser opens on the slice with the most tumour. The volume in ml needs the voxel "
        "size: DICOM and NIfTI carry it; for slice pictures (`kaggle_3m` tifs carry none) type "
        "it in."
    )
    patient = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            upload = upload_box("Patient volume (zip or NIfTI)", elem_id="tumor-volume-upload")
            voxel = gr.Textbox(
                label="Voxel size in mm (column row slice), for slice pictures",
                placeholder="e.g. 0.94 0.94 5; DICOM and NIfTI give their own",
                elem_id="tumor-volume-voxel",
            )
            run = gr.Button("Segment volume", variant="primary")
            number = gr.Slider(1, 2, value=1, step=1, label="Slice", interactive=False)
            files = gr.File(
                label="Mask (NIfTI, PNGs) and report (JSON, CSV)",
                file_count="multiple",
                interactive=False,
            )
        with gr.Column(scale=2):
            view = gr.Image(
                label="Slice with the predicted tumour",
                type="numpy",
                interactive=False,
                elem_id="tumor-volume-view",
            )
            summary = gr.JSON(label="Volume summary")
            table = gr.Dataframe(headers=SLICE_COLUMNS, label="Per slice")
            about = gr.Markdown()
    outputs = [patient, number, view, summary, table, files, about]
    run.click(
        analyse_volume, [upload, voxel], outputs, api_name="tumor_volume", concurrency_id="models"
    )
    gr.Examples(
        examples(VOLUME_EXAMPLE),
        inputs=upload,
        outputs=outputs,
        fn=analyse_volume,
        run_on_click=True,
        cache_examples=False,
        label="Example patient (phantom, zipped kaggle_3m folder with masks)",
    )
    number.release(show_slice, [patient, number], view, api_visibility="private")


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
            upload = upload_box("MR slice", elem_id="tumor-upload")
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
                verdict = gr.Label(label=VERDICT, elem_id="tumor-verdict")
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
    build_volume()
