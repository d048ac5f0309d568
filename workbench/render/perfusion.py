"""Pictures of perfusion maps: each map's slice in colour with its scale, and the arterial input
function with where its voxels are. The Perfusion tab and ``python -m workbench perfusion`` draw
them the same way (the CLI saves them as PNG). The tab also draws the slice people click on to
pick the AIF's voxels, and maps a click back to its voxel.

Figures are made without pyplot: no global state and no GUI backend in Gradio's worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from workbench.perfusion.maps import PerfusionConfig, PerfusionMaps
from workbench.render import colourise, enlarge, figure_pixels, overlay_mask

# s, outlined on the Tmax map: the lower of the two volumes the summary measures
THRESHOLD = PerfusionConfig().tmax_thresholds[0]
PICK_COLOUR = (255, 40, 40)  # the picked AIF voxels, red as the AIF's voxels in aif_figure


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


def limits(maps: PerfusionMaps) -> dict[str, float]:
    """The upper end of each map's colour scale."""
    out = {}
    for name, style in STYLES.items():
        inside = getattr(maps, name)[maps.mask]
        top = style.vmax or (float(np.percentile(inside, 95)) if inside.size else 1.0)
        out[name] = max(top, 1e-3)
    return out


def colour_bar(style: MapStyle, vmax: float, width: int) -> np.ndarray:
    """A labelled horizontal colour bar ``width`` pixels wide, to go under a map."""
    dpi = 100
    fig = Figure(figsize=(width / dpi, 0.62), dpi=dpi)
    ax = fig.add_axes((0.06, 0.62, 0.88, 0.3))
    mappable = ScalarMappable(norm=Normalize(0.0, vmax), cmap=style.cmap)
    fig.colorbar(mappable, cax=ax, orientation="horizontal")
    ax.tick_params(labelsize=7, length=2, pad=1)
    ax.set_xlabel(f"{style.title} ({style.unit})", fontsize=7, labelpad=1)
    bar = figure_pixels(fig)[:, :width]
    return np.pad(bar, ((0, 0), (0, width - bar.shape[1]), (0, 0)), constant_values=255)


def colour_bars(maps: PerfusionMaps, scale: dict[str, float]) -> dict[str, np.ndarray]:
    """Each map's colour bar, as wide as its enlarged slice."""
    width = enlarge(np.zeros((*maps.mask.shape[1:], 3), np.uint8)).shape[1]
    return {name: colour_bar(style, scale[name], width) for name, style in STYLES.items()}


def map_picture(
    maps: PerfusionMaps, name: str, z: int, scale: dict[str, float], bars: dict[str, np.ndarray]
) -> np.ndarray:
    """Slice ``z`` of map ``name`` in colour over its colour bar; Tmax > 6 s outlined."""
    style = STYLES[name]
    values = np.where(maps.mask[z], getattr(maps, name)[z], np.nan)
    rgb = colourise(values, 0.0, scale[name], style.cmap)
    if name == "tmax":  # the triage region: outline only, so the colours under it stay readable
        rgb = overlay_mask(rgb, maps.mask[z] & (maps.tmax[z] > THRESHOLD), (255, 255, 255), 0.0)
    return np.concatenate([enlarge(rgb), bars[name]], axis=0)


def most_hypoperfused_slice(maps: PerfusionMaps) -> int:
    """The slice with the most Tmax > 6 s (the middle one when there is none): shown first."""
    per_slice = (maps.mask & (maps.tmax > THRESHOLD)).sum(axis=(1, 2))
    return int(np.argmax(per_slice)) if per_slice.any() else maps.mask.shape[0] // 2


def backdrop(signal: np.ndarray) -> np.ndarray:
    """(Z, Y, X) mean of the first eighth of a (Z, Y, X, T) series: before the bolus, where
    anatomy shows best."""
    return signal[..., : max(1, signal.shape[-1] // 8)].mean(axis=3)


def bolus_drop(signal: np.ndarray) -> np.ndarray:
    """(Z, Y, X) each voxel's deepest fall below its :func:`backdrop`, 0–1: ``1 − exp(−TE·ΔR2*)``
    at the ΔR2* peak, so arteries, where the bolus passes undiluted, are the brightest.
    ``signal``: (Z, Y, X, T) with empty frames bridged (``perfusion.signal.clean``), which would
    otherwise read as a full drop."""
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = 1.0 - signal.min(axis=3) / backdrop(signal)
    return np.clip(np.nan_to_num(drop), 0.0, 1.0).astype(np.float32)


def pick_picture(drop: np.ndarray, mask: np.ndarray, picked: np.ndarray) -> np.ndarray:
    """A slice of :func:`bolus_drop` in grey (black outside the tissue ``mask``, where no pick is
    taken), enlarged as the maps are, with the ``picked`` voxels outlined. The square-root scale
    shows tissue (a quarter to a half of its signal lost) as anatomy around the white vessels.
    Rows and columns are the array's own, as on the maps: :func:`voxel_at` undoes only the
    enlargement."""
    rgb = enlarge(colourise(np.sqrt(np.where(mask, drop, np.nan)), 0.0, 1.0, "gray"))
    return overlay_mask(rgb, enlarge(picked), PICK_COLOUR)


def voxel_at(pixel: Sequence[int], plane: tuple[int, int]) -> tuple[int, int] | None:
    """The (row, column) of the voxel under ``pixel`` ((x, y), as a click on a
    :func:`pick_picture` of a ``plane``-shaped slice reports it); None off the slice."""
    factor = enlarge(np.zeros((*plane, 1), np.uint8)).shape[0] // plane[0]
    row, col = int(pixel[1]) // factor, int(pixel[0]) // factor
    return (row, col) if 0 <= row < plane[0] and 0 <= col < plane[1] else None


def aif_figure(maps: PerfusionMaps, baseline: np.ndarray) -> Figure:
    """The arterial curve, and where its voxels are on the slice holding most of them
    (``baseline``: the :func:`backdrop` of the series)."""
    fig = Figure(figsize=(9, 3.2), dpi=100)
    curve, place = fig.subplots(1, 2)
    curve.plot(maps.times, maps.aif, color="crimson", marker=".", lw=1.5)
    curve.set_xlabel("time (s)")
    curve.set_ylabel("ΔR2* (1/s)")
    curve.set_title(f"arterial input function ({len(maps.aif_voxels)} voxels)")
    curve.grid(alpha=0.3)
    slices, counts = np.unique(maps.aif_voxels[:, 0], return_counts=True)
    z = int(slices[np.argmax(counts)])
    place.imshow(baseline[z], cmap="gray")
    here = maps.aif_voxels[maps.aif_voxels[:, 0] == z]
    place.scatter(here[:, 2], here[:, 1], s=14, facecolors="none", edgecolors="red")
    place.set_title(f"AIF voxels on slice {z + 1} ({len(here)} of {len(maps.aif_voxels)})")
    place.axis("off")
    fig.tight_layout()
    return fig


def write_pictures(maps: PerfusionMaps, signal: np.ndarray, out_dir: Path) -> list[Path]:
    """``aif.png`` and one PNG per map of the most hypoperfused slice, as the tab first shows."""
    z, scale = most_hypoperfused_slice(maps), limits(maps)
    bars = colour_bars(maps, scale)
    paths = [out_dir / "aif.png"]
    aif_figure(maps, backdrop(signal)).savefig(paths[0])
    for name in STYLES:
        paths.append(out_dir / f"{name}_slice{z + 1}.png")
        PIL.Image.fromarray(map_picture(maps, name, z, scale, bars)).save(paths[-1])
    return paths
