"""The Perfusion tab: a 4D DSC series in, Tmax / CBF / CBV / MTT maps, volumes and the AIF out.

Upload a zip of the DICOM series (one file per slice and time point, any names) or a 4D NIfTI.
The built-in example (the perfusion task's, :mod:`workbench.tasks.perfusion`) is a simulated
stroke patient (64×64, 6 slices, 40 time points) made by ``scripts/make_examples.py perfusion``.

The series is unzipped into a temporary folder deleted with the request; the maps offered for
download are written straight into a folder of their own in Gradio's cache, which the app sweeps
like the uploads.

The AIF can also be picked by clicking: each click on the bolus picture adds its voxel to the
session's picks (a second click drops it), and "Recompute with picked AIF" passes them on as the
AIF region an uploaded mask would be.
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
from workbench.perfusion.signal import clean
from workbench.render import perfusion as figures
from workbench.tasks import get_task
from workbench.ui.common import guarded, result_folder, upload_column, upload_path

EXAMPLES = get_task("perfusion").examples
METHODS = [
    ("template fit (least delay bias)", "template"),
    ("oSVD (deconvolution)", "osvd"),
    ("bSVD (deconvolution)", "bsvd"),
    ("trained CNN", "cnn"),
]

Voxel = tuple[int, int, int]  # z, y, x on the series' grid
Picks = tuple[Voxel, ...]  # the voxels clicked for the AIF, sorted


@dataclass
class Study:
    """What one analysis gave, kept per browser session for the slice slider and the picks."""

    maps: PerfusionMaps
    baseline: np.ndarray  # (Z, Y, X) mean pre-contrast signal, the backdrop of the AIF picture
    drop: np.ndarray  # (Z, Y, X) the bolus' deepest signal drop, the picture picks are made on
    scale: dict[str, float]  # upper end of each map's colour scale
    bars: dict[str, np.ndarray]  # each map's colour bar picture
    source: str  # the series' file name: picks are refused on another series


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


def _slice(study: Study, number: float) -> int:
    """The slider's slice number as an index into the study's slices."""
    return int(np.clip(round(number) - 1, 0, study.maps.mask.shape[0] - 1))


def _picked_region(picks: Picks, shape: tuple[int, ...]) -> np.ndarray:
    """The picks as the (Z, Y, X) bool region an uploaded AIF mask becomes (``read_aif_region``)."""
    region = np.zeros(shape, bool)
    for voxel in picks:
        region[voxel] = True
    return region


def _toggled(picks: Picks, voxel: Voxel) -> Picks:
    """``picks`` with ``voxel`` added, or dropped if it was there: a second click undoes a slip."""
    return tuple(sorted(set(picks) ^ {voxel}))


def _picker(study: Study, picks: Picks, z: int) -> gr.Image:
    """Slice ``z`` of the bolus picture with the picks on it, labelled with how many there are."""
    picture = figures.pick_picture(
        study.drop[z], study.maps.mask[z], _picked_region(picks, study.maps.mask.shape)[z]
    )
    slices = ", ".join(str(k + 1) for k in sorted({voxel[0] for voxel in picks}))
    count = f"{len(picks)} (slice {slices})" if picks else "click arteries"
    return gr.Image(picture, label=f"AIF picks: {count}")


def _view(study: Study, picks: Picks, z: int) -> tuple:
    """Slice ``z``: the pick picture, then the four maps."""
    maps = (
        figures.map_picture(study.maps, name, z, study.scale, study.bars) for name in figures.STYLES
    )
    return _picker(study, picks, z), *maps


def _warn_unless_arterial(summary: dict) -> None:
    """Every AIF, automatic, uploaded or picked, is checked against the tissue's mean curve."""
    check = summary["aif_check"]
    if not check["arterial"]:
        lead = check["lead_frames"]
        timing = f"{abs(lead)} frames {'before' if lead >= 0 else 'after'} it"
        gr.Warning(
            f"the AIF does not look arterial: its peak is {check['peak_ratio']}× the tissue's, "
            f"{timing}, {check['width_ratio']}× as wide (an artery's is at least 3× as high, "
            "earlier and narrower); pick voxels in an artery."
        )


def _results(
    series: Series,
    method: str,
    region: np.ndarray | None,
    picks: Picks,
    z: int | None,
    progress: gr.Progress,
) -> tuple:
    """Maps of ``series`` with the AIF from ``region`` (None: automatic), shown at slice ``z``
    (None: the most hypoperfused) → every output of the run and recompute buttons."""
    maps = perfusion_maps(
        series, method, lambda f, message: progress(f, desc=message), aif_region=region
    )
    _warn_unless_arterial(maps.summary)
    scale = figures.limits(maps)
    study = Study(
        maps=maps,
        baseline=figures.backdrop(series.data),
        drop=figures.bolus_drop(clean(series.data)),
        scale=scale,
        bars=figures.colour_bars(maps, scale),
        source=series.source,
    )
    z = figures.most_hypoperfused_slice(maps) if z is None else z
    # Gradio wants maximum > minimum; a one-slice series gets a second stop that shows the same
    slider = gr.Slider(1, max(2, maps.mask.shape[0]), value=z + 1, step=1, interactive=True)
    return (
        study,
        picks,
        slider,
        *_view(study, picks, z),
        figures.aif_figure(maps, study.baseline),
        _headline(maps),
        maps.summary,
        _downloads(maps, series),
    )


@guarded
def analyse(
    upload: Any,
    method: str,
    aif_upload: Any = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple:
    """Upload (and optionally an AIF region as a NIfTI mask) → (study state, picks (none), slice
    slider, pick picture, 4 map pictures, AIF plot, headline, summary, files)."""
    path = upload_path(upload)
    progress(0.0, desc="reading the series")
    series = _series(path)
    region = None if aif_upload is None else read_aif_region(upload_path(aif_upload), series)
    return _results(series, method, region, (), None, progress)


def _keep_all(message: str) -> dict:
    """A slip while picking, told in one line; every output stays as it was, where an error
    would blank the maps shown."""
    gr.Warning(message)
    return gr.skip()


def _analysed(study: Study | None) -> Study:
    if study is None:
        raise InputError("analyse a series first: upload it and click Compute maps.")
    return study


@guarded
def show(study: Study | None, picks: Picks, number: float) -> tuple:
    """Another slice of the analysed series."""
    study = _analysed(study)
    return _view(study, picks, _slice(study, number))


@guarded
def pick(study: Study | None, picks: Picks, number: float, evt: gr.SelectData) -> tuple:
    """A click on the pick picture → (picks with its voxel toggled, the picture again).

    One voxel per click, not a neighbourhood: at DSC resolution an artery is a voxel or two
    wide, and the tissue a 3×3 patch would add lowers and widens the AIF (partial volume)."""
    study = _analysed(study)
    z = _slice(study, number)
    place = figures.voxel_at(evt.index, study.maps.mask.shape[1:])
    if place is None or not study.maps.mask[(z, *place)]:
        return _keep_all(
            "that point is outside the brain mask (black on the picture); click an artery "
            "inside the brain."
        )
    picks = _toggled(picks, (z, *place))
    return picks, _picker(study, picks, z)


@guarded
def clear_picks(study: Study | None, number: float) -> tuple:
    """No picks: (picks, the picture without them)."""
    study = _analysed(study)
    return (), _picker(study, (), _slice(study, number))


@guarded
def recompute(
    upload: Any,
    method: str,
    study: Study | None,
    picks: Picks,
    number: float,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
) -> tuple:
    """The maps again with the AIF the mean ΔR2* of the picked voxels, passed as the AIF region
    an uploaded mask would be; the same outputs as :func:`analyse`, at the slice shown."""
    study = _analysed(study)
    if not picks:
        return _keep_all("no voxels picked: click arteries on the AIF picks picture first.")
    path = upload_path(upload)
    if path.name != study.source:
        return _keep_all(
            f"the picks were made on {study.source}, not {path.name}: click Compute maps for "
            "this series and pick again."
        )
    region = _picked_region(picks, study.maps.mask.shape)
    return _results(_series(path), method, region, picks, _slice(study, number), progress)


def build() -> None:
    gr.Markdown(
        "Upload a DSC perfusion series: a **zip of the DICOM files** (one per slice and time "
        "point, in any order) or a **4D NIfTI**. The workbench finds the arterial input "
        "function, reads every voxel against it and shows Tmax, CBF, CBV and MTT. The default "
        "template fit reads Tmax without the SVD methods' 2–4 s late bias; oSVD and bSVD "
        "deconvolve; the trained CNN reads Tmax (CBF, CBV and MTT from the template fit). The "
        "white outline is Tmax > 6 s, the region stroke teams measure. When the AIF's voxels "
        "(shown under the maps, and downloadable as `aif_mask.nii.gz`) are not in an artery, click "
        "arteries on the AIF picks picture (bright where the bolus passes undiluted; a second "
        "click drops a voxel) and recompute, or correct that mask in a viewer and give it back "
        "as the AIF region."
    )
    study = gr.State(None)
    picks = gr.State(())
    method = gr.Radio(METHODS, value=METHODS[0][1], label="Tmax method", render=False)
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
            with gr.Row():
                with gr.Column(scale=1):
                    picker = gr.Image(
                        label="AIF picks: click arteries",
                        type="numpy",
                        format="png",  # lossless: each voxel's square keeps its edges
                        interactive=False,
                        elem_id="perfusion-pick",
                    )
                    with gr.Row():
                        clear = gr.Button("Clear picks", size="sm")
                        again = gr.Button("Recompute with picked AIF", size="sm")
                with gr.Column(scale=3):
                    aif = gr.Plot(show_label=False, elem_id="perfusion-aif")  # it has titles
            summary = gr.JSON(label="Summary (volumes in ml)")
    results = [study, picks, number, picker, *pictures, aif, headline, summary, files]
    run.click(
        analyse,
        [upload, method, aif_region],
        results,
        api_name="perfusion_maps",
        concurrency_id="perfusion",
        concurrency_limit=1,
    )
    again.click(
        recompute,
        [upload, method, study, picks, number],
        results,
        api_visibility="private",
        concurrency_id="perfusion",
    )
    number.release(show, [study, picks, number], [picker, *pictures], api_visibility="private")
    picker.select(pick, [study, picks, number], [picks, picker], api_visibility="private")
    clear.click(clear_picks, [study, number], [picks, picker], api_visibility="private")
