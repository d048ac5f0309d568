"""Pictures for people: slices for display, mask overlays, heat maps, colour bars.

Everything returns uint8 RGB arrays (H, W, 3) so the app, the CLI and reports can show or save
them without knowing how they were made.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from scipy import ndimage

from workbench.transforms.mr import scale_intensity


def to_rgb(pixels: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """A display version of a slice: robust window per channel, grey repeated to RGB."""
    x = scale_intensity(pixels, low_pct, high_pct)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return (x[..., :3] * 255).round().astype(np.uint8)


def overlay_mask(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 60, 60),
    alpha: float = 0.35,
) -> np.ndarray:
    """Translucent fill plus a crisp one-pixel outline, so the slice stays readable under it."""
    mask = mask.astype(bool)
    out = rgb.astype(np.float32)
    c = np.asarray(color, np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * c
    outline = mask & ~ndimage.binary_erosion(mask, border_value=0)
    out[outline] = c
    return out.round().astype(np.uint8)


def overlay_heatmap(
    rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """Heat map in [0, 1] (resized to the slice) blended over it; low values stay transparent."""
    heat = np.clip(np.nan_to_num(heat.astype(np.float32)), 0, 1)
    if heat.shape != rgb.shape[:2]:
        zoom = (rgb.shape[0] / heat.shape[0], rgb.shape[1] / heat.shape[1])
        heat = np.clip(ndimage.zoom(heat, zoom, order=1), 0, 1)
    colour = colormaps[cmap](heat)[..., :3] * 255
    weight = (alpha * heat)[..., None]
    out = (1 - weight) * rgb.astype(np.float32) + weight * colour
    return out.round().astype(np.uint8)


def colourise(values: np.ndarray, vmin: float, vmax: float, cmap: str = "turbo") -> np.ndarray:
    """A scalar map (Tmax in seconds, CBF, ...) in a colour map; NaN shows black."""
    norm = np.clip((np.nan_to_num(values, nan=vmin) - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    rgb = (colormaps[cmap](norm)[..., :3] * 255).round().astype(np.uint8)
    rgb[~np.isfinite(values)] = 0
    return rgb


DISPLAY = 256  # px: smaller pictures are enlarged to at least this for the app


def enlarge(rgb: np.ndarray) -> np.ndarray:
    """A small picture (a 64×64 DICOM, a perfusion map) repeated pixel by pixel to at least
    :data:`DISPLAY` px, so the browser does not show a thumbnail; nearest neighbour keeps the
    voxels honest."""
    factor = max(1, -(-DISPLAY // max(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def figure_pixels(fig) -> np.ndarray:
    """A matplotlib ``Figure`` drawn on an Agg canvas, as an (H, W, 3) uint8 array. No pyplot:
    pyplot's global figure state is unsafe in gradio's worker threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def probability_bars(
    probs: dict[str, float], threshold: float, title: str = "", width: int = 520
) -> np.ndarray:
    """Horizontal bars of independent probabilities with the operating threshold drawn across
    them, so that a reader sees which labels count as positive, not just which bar is longest."""
    from matplotlib.figure import Figure

    labels = list(probs)[::-1]  # the first label on top
    values = [probs[k] for k in labels]
    dpi = 100
    fig = Figure(figsize=(width / dpi, 0.42 * len(labels) + 0.9), dpi=dpi)
    ax = fig.add_subplot()
    colours = ["#c0392b" if v >= threshold else "#7f8c8d" for v in values]
    ax.barh(labels, values, color=colours)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    for y, v in enumerate(values):
        ax.text(min(v + 0.01, 0.88), y, f"{v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"probability (dashed: the threshold, {threshold:g})")
    if title:  # in the app the image's own label names it; a drawn title would sit under it
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return figure_pixels(fig)
