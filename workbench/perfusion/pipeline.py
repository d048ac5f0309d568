"""File in, NIfTI maps and a JSON-able summary out: what the CLI and the app call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from time import perf_counter

import nibabel as nib
import numpy as np

from workbench.errors import InputError
from workbench.io.series import load_series
from workbench.perfusion.maps import PerfusionConfig, PerfusionMaps, Progress, compute_maps

MAP_NAMES = ("tmax", "cbf", "cbv", "mtt")


def run_perfusion(
    path: str | Path,
    out_dir: str | Path,
    method: str = "osvd",
    progress: Progress | None = None,
    config: PerfusionConfig | None = None,
    weights: str | None = None,
) -> dict:
    """Read a DSC series, write ``tmax/cbf/cbv/mtt.nii.gz`` into ``out_dir``, return the summary.

    The summary holds ``tmax_gt6_ml``, ``tmax_gt10_ml``, ``hir`` and ``seconds`` (whole run,
    reading included), among others. ``config`` overrides every option; ``method`` is a shortcut.
    ``weights`` (a model folder or Hub repo) is for ``method="cnn"``.
    """
    if method == "cnn" or weights is not None:
        raise InputError("the CNN perfusion method is not available yet; use osvd, bsvd or ssvd.")
    start = perf_counter()
    series = load_series(path)
    config = config or PerfusionConfig(method=method)
    maps = compute_maps(series, config, progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_maps(maps, series.to_nifti, out_dir)
    return {**maps.summary, "seconds": round(perf_counter() - start, 3), "out_dir": str(out_dir)}


def write_maps(
    maps: PerfusionMaps, to_nifti: Callable[[np.ndarray], nib.Nifti1Image], out_dir: Path
) -> list[Path]:
    """Save each map as ``<name>.nii.gz`` with the series' affine."""
    written = []
    for name in MAP_NAMES:
        target = out_dir / f"{name}.nii.gz"
        nib.save(to_nifti(getattr(maps, name)), target)
        written.append(target)
    return written
