"""The Perfusion tab: a 4D DSC series in, Tmax / CBF / CBV / MTT maps, volumes and the AIF out.

Upload a zip of the DICOM series (one file per slice and time point, any names) or a 4D NIfTI.
The built-in example (the perfusion task's, :mod:`workbench.tasks.perfusion`) is a simulated
stroke patient (64×64, 6 slices, 40 time points) made by ``scripts/make_examples.py perfusion``.

The series is unzipped into a temporary folder deleted with the request; the maps offered for
download are written straight into a folder of their own in Gradio's cache, which the app sweeps
like the uploads.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from workbench.errors import InputError
from workbench.io.nifti import is_nifti_file
from workbench.io.series import Series, load_series
from workbench.io.sniff import is_dicom
from workbench.perfusion.maps import PerfusionMaps
from workbench.perfusion.pipeline import perfusion_maps, read_aif_region, write_maps
from workbench.render import perfusion as figures
from workbench.tasks import get_task
from workbench.ui.common import guarded, result_folder, upload_column, upload_path

EXAMPLES = get_task("perfusion").examples
METHODS = [
    ("oSVD (deconvolution)", "osvd"),
    ("bSVD (deconvolution)", "bsvd"),
    ("trained CNN", "cnn"),
]


@dataclass
class Study:
    """What one analysis gave, kept per browser session for the slice slider."""

    maps: PerfusionMaps
    baseline: np.ndarray  # (Z, Y, X) mean pre-contrast signal, the backdrop of the AIF picture
    scale: dict[str, float]  # upper end of each map's colour scale
    bars: dict[str, np.ndarray]  # each map's colour bar picture


def _series(path: Path) -> Series:
    """The upload's series, told apart by content: DICOM from PACS and CDs has no extension."""
    if not (zipfile.is_zipfile(path) or is_nifti_file(path) or is_dicom(path)):
        raise InputError(
            f"{path.name}: upload a zip of the DICOM series or a 4D NIfTI (.nii / .nii.gz)."
        )
    return load_series(path)


def _downloads(maps: PerfusionMaps, series: Series) -> list[str]:
    """The maps as NIfTI files in a download folder of this request's own."""
    return [str(p) for p in write_maps(maps, series.to_nifti, result_folder("perfusion_"))]


def _headline(maps: PerfusionMaps) -> str:
    s = maps.summary
    method = s["method"] if s["method"] != "cnn" else f"trained CNN ({s['model']})"
    return (
        f"**Tmax > 6 s: {s['tmax_gt6_ml']} ml** · Tmax > 10 s: {s['tmax_gt10_ml']} ml · "
        f"hypoperfusion intensity ratio {s['hir']} · Tmax by **{method}**"
    )


def _view(study: Study, number: float) -> tuple:
    z = int(np.clip(round(number) - 1, 0, study.maps.mask.shape[0] - 1))
    return tuple(
        figures.map_picture(study.maps, name, z, study.scale, study.bars) for name in figures.STYLES
    )


@guarded
def analyse(
    upload: Any,
    method: str,
    aif_upload: Any = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple:
    """Upload (and optionally an AIF region as a NIfTI mask) → (study state, slice slider, 4 map
    pictures, AIF plot, headline, summary, files)."""
    path = upload_path(upload)
    progress(0.0, desc="reading the series")
    series = _series(path)
    region = None if aif_upload is None else read_aif_region(upload_path(aif_upload), series)
    maps = perfusion_maps(
        series, method, lambda f, message: progress(f, desc=message), aif_region=region
    )
    scale = figures.limits(maps)
    study = Study(
        maps=maps,
        baseline=figures.backdrop(series.data),
        scale=scale,
        bars=figures.colour_bars(maps, scale),
    )
    first = figures.most_hypoperfused_slice(maps)
    # Gradio wants maximum > minimum; a one-slice series gets a second stop that shows the same
    slider = gr.Slider(1, max(2, maps.mask.shape[0]), value=first + 1, step=1, interactive=True)
    return (
        study,
        slider,
        *_view(study, first + 1),
        figures.aif_figure(maps, study.baseline),
        _headline(maps),
        maps.summary,
        _downloads(maps, series),
    )


@guarded
def show(study: Study | None, number: float) -> tuple:
    """Another slice of the analysed series."""
    if study is None:
        raise InputError("analyse a series first: upload it and click Compute maps.")
    return _view(study, number)


def build() -> None:
    gr.Markdown(
        "Upload a DSC perfusion series: a **zip of the DICOM files** (one per slice and time "
        "point, in any order) or a **4D NIfTI**. The workbench finds the arterial input "
        "function, deconvolves every voxel (oSVD or bSVD) and shows Tmax, CBF, CBV and MTT; the "
        "trained CNN reads Tmax instead (CBF, CBV and MTT still come from oSVD). The white "
        "outline is Tmax > 6 s, the region stroke teams measure. When the AIF's voxels (shown "
        "under the maps, and downloadable as `aif_mask.nii.gz`) are not in an artery, correct "
        "that mask in a viewer and give it back as the AIF region."
    )
    study = gr.State(None)
    method = gr.Radio(METHODS, value="osvd", label="Tmax method", render=False)
    aif_region = gr.File(
        label="AIF region (optional NIfTI mask on the series' grid)",
        file_count="single",
        type="filepath",
        render=False,
    )
    with gr.Row():
        with gr.Column(scale=1):
            upload, run = upload_column(
                "DSC series (zip of DICOM, or NIfTI)",
                elem_id="perfusion-upload",
                settings=[method, aif_region],
                button="Compute maps",
                example_names=EXAMPLES,
                examples_label="Example (simulated stroke)",
            )
            number = gr.Slider(1, 2, value=1, step=1, label="Slice", interactive=False)
            headline = gr.Markdown()
            files = gr.File(
                label="Maps and AIF mask (NIfTI)", file_count="multiple", interactive=False
            )
        with gr.Column(scale=3):
            with gr.Row():
                pictures = [
                    gr.Image(
                        label=style.title,  # the unit is on the colour bar
                        type="numpy",
                        interactive=False,
                        elem_id=f"perfusion-{name}",
                    )
                    for name, style in figures.STYLES.items()
                ]
            aif = gr.Plot(show_label=False, elem_id="perfusion-aif")  # the figure has titles
            summary = gr.JSON(label="Summary (volumes in ml)")
    run.click(
        analyse,
        [upload, method, aif_region],
        [study, number, *pictures, aif, headline, summary, files],
        api_name="perfusion_maps",
        concurrency_id="perfusion",
        concurrency_limit=1,
    )
    number.release(show, [study, number], pictures, api_visibility="private")
