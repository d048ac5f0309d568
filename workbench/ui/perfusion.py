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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from workbench.errors import InputError
from workbench.io.series import NIFTI_SUFFIXES, Series, load_series
from workbench.io.sniff import is_dicom
from workbench.perfusion.maps import PerfusionMaps
from workbench.perfusion.pipeline import perfusion_maps, write_maps
from workbench.render import colourise, overlay_mask
from workbench.tasks import get_task
from workbench.ui.common import guarded, result_folder, upload_column, upload_path

EXAMPLES = get_task("perfusion").examples
METHODS = [
    ("oSVD (deconvolution)", "osvd"),
    ("bSVD (deconvolution)", "bsvd"),
    ("trained CNN", "cnn"),
]
THRESHOLD = 6.0  # s, outlined on the Tmax map
DISPLAY = 256  # px: maps are enlarged (nearest neighbour) to at least this size


@dataclass(frozen=True)
class MapStyle:
    """How one map is drawn: its colour map, unit and the upper end of its scale."""

    title: str
    unit: str
    cmap: str
    vmax: float | None  # None: the 95th percentile inside the mask (arteries lie above)


STYLES: dict[str, MapStyle] = {
    "tmax": MapStyle("Tmax", "s", "turbo", 12.0),  # the scale stroke software shows
    "cbf": MapStyle("CBF", "ml/100 g/min", "magma", None),
    "cbv": MapStyle("CBV", "ml/100 g", "magma", None),
    "mtt": MapStyle("MTT", "s", "viridis", None),
}


@dataclass
class Study:
    """What one analysis gave, kept per browser session for the slice slider."""

    maps: PerfusionMaps
    baseline: np.ndarray  # (Z, Y, X) mean pre-contrast signal, the backdrop of the AIF picture
    limits: dict[str, float]  # upper end of each map's colour scale
    bars: dict[str, np.ndarray]  # each map's colour bar picture


def _series(path: Path) -> Series:
    """The upload's series, told apart by content: DICOM from PACS and CDs has no extension."""
    if not (
        zipfile.is_zipfile(path) or path.name.lower().endswith(NIFTI_SUFFIXES) or is_dicom(path)
    ):
        raise InputError(
            f"{path.name}: upload a zip of the DICOM series or a 4D NIfTI (.nii / .nii.gz)."
        )
    return load_series(path)


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    factor = max(1, -(-DISPLAY // max(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


# Figures are made without pyplot: no global state and no GUI backend in Gradio's worker threads.
def colour_bar(style: MapStyle, vmax: float, width: int) -> np.ndarray:
    """A labelled horizontal colour bar ``width`` pixels wide, to go under a map."""
    dpi = 100
    fig = Figure(figsize=(width / dpi, 0.62), dpi=dpi)
    ax = fig.add_axes((0.06, 0.62, 0.88, 0.3))
    mappable = ScalarMappable(norm=Normalize(0.0, vmax), cmap=style.cmap)
    fig.colorbar(mappable, cax=ax, orientation="horizontal")
    ax.tick_params(labelsize=7, length=2, pad=1)
    ax.set_xlabel(f"{style.title} ({style.unit})", fontsize=7, labelpad=1)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    bar = np.asarray(canvas.buffer_rgba())[:, :width, :3]
    return np.pad(bar, ((0, 0), (0, width - bar.shape[1]), (0, 0)), constant_values=255)


def _map_picture(study: Study, name: str, z: int) -> np.ndarray:
    maps, style = study.maps, STYLES[name]
    values = np.where(maps.mask[z], getattr(maps, name)[z], np.nan)
    rgb = colourise(values, 0.0, study.limits[name], style.cmap)
    if name == "tmax":  # the triage region: outline only, so the colours under it stay readable
        rgb = overlay_mask(rgb, maps.mask[z] & (maps.tmax[z] > THRESHOLD), (255, 255, 255), 0.0)
    picture = _enlarge(rgb)
    return np.concatenate([picture, study.bars[name]], axis=0)


def aif_plot(study: Study) -> Figure:
    """The arterial curve, and where its voxels are on the slice holding most of them."""
    maps = study.maps
    fig = Figure(figsize=(9, 3.2), dpi=100)
    curve, place = fig.subplots(1, 2)
    curve.plot(maps.times, maps.aif, color="crimson", marker=".", lw=1.5)
    curve.set_xlabel("time (s)")
    curve.set_ylabel("ΔR2* (1/s)")
    curve.set_title(f"arterial input function ({len(maps.aif_voxels)} voxels)")
    curve.grid(alpha=0.3)
    slices, counts = np.unique(maps.aif_voxels[:, 0], return_counts=True)
    z = int(slices[np.argmax(counts)])
    place.imshow(study.baseline[z], cmap="gray")
    here = maps.aif_voxels[maps.aif_voxels[:, 0] == z]
    place.scatter(here[:, 2], here[:, 1], s=14, facecolors="none", edgecolors="red")
    place.set_title(f"AIF voxels on slice {z + 1} ({len(here)} of {len(maps.aif_voxels)})")
    place.axis("off")
    fig.tight_layout()
    return fig


def _limits(maps: PerfusionMaps) -> dict[str, float]:
    limits = {}
    for name, style in STYLES.items():
        inside = getattr(maps, name)[maps.mask]
        top = style.vmax or (float(np.percentile(inside, 95)) if inside.size else 1.0)
        limits[name] = max(top, 1e-3)
    return limits


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
    return tuple(_map_picture(study, name, z) for name in STYLES)


@guarded
def analyse(upload: Any, method: str, progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
    """Upload → (study state, slice slider, 4 map pictures, AIF plot, headline, summary, files)."""
    path = upload_path(upload)
    progress(0.0, desc="reading the series")
    series = _series(path)
    maps = perfusion_maps(series, method, lambda f, message: progress(f, desc=message))
    width = _enlarge(np.zeros((*maps.mask.shape[1:], 3), np.uint8)).shape[1]
    limits = _limits(maps)
    study = Study(
        maps=maps,
        baseline=series.data[..., : max(1, len(series.times) // 8)].mean(axis=3),
        limits=limits,
        bars={name: colour_bar(style, limits[name], width) for name, style in STYLES.items()},
    )
    per_slice = (maps.mask & (maps.tmax > THRESHOLD)).sum(axis=(1, 2))
    first = int(np.argmax(per_slice)) if per_slice.any() else maps.mask.shape[0] // 2
    # Gradio wants maximum > minimum; a one-slice series gets a second stop that shows the same
    slider = gr.Slider(1, max(2, maps.mask.shape[0]), value=first + 1, step=1, interactive=True)
    return (
        study,
        slider,
        *_view(study, first + 1),
        aif_plot(study),
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
        "outline is Tmax > 6 s, the region stroke teams measure."
    )
    study = gr.State(None)
    method = gr.Radio(METHODS, value="osvd", label="Tmax method", render=False)
    with gr.Row():
        with gr.Column(scale=1):
            upload, run = upload_column(
                "DSC series (zip of DICOM, or NIfTI)",
                settings=[method],
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
                    for name, style in STYLES.items()
                ]
            aif = gr.Plot(show_label=False, elem_id="perfusion-aif")  # the figure has titles
            summary = gr.JSON(label="Summary (volumes in ml)")
    run.click(
        analyse,
        [upload, method],
        [study, number, *pictures, aif, headline, summary, files],
        api_name="perfusion_maps",
        concurrency_id="perfusion",
        concurrency_limit=1,
    )
    number.release(show, [study, number], pictures, api_visibility="private")
