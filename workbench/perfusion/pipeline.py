"""File in, NIfTI maps and a JSON-able summary out: what the CLI and the app call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from workbench.errors import InputError
from workbench.io.series import Series, load_series
from workbench.perfusion.maps import (
    TEMPLATE,
    PerfusionConfig,
    PerfusionMaps,
    Progress,
    compute_maps,
    hypoperfusion_volumes,
)
from workbench.render import perfusion as figures

if TYPE_CHECKING:
    from workbench.weights import ModelBundle

MAP_NAMES = ("tmax", "cbf", "cbv", "mtt")
CNN = "cnn"  # the method name of a trained net's Tmax


def run_perfusion(
    path: str | Path,
    out_dir: str | Path,
    method: str = TEMPLATE,
    progress: Progress | None = None,
    config: PerfusionConfig | None = None,
    weights: str | None = None,
    aif_mask: str | Path | None = None,
) -> dict:
    """Read a DSC series, write ``tmax/cbf/cbv/mtt/aif_mask.nii.gz`` into ``out_dir`` with the
    pictures the Perfusion tab shows (``aif.png``, each map's most hypoperfused slice); return
    the summary.

    The summary holds ``tmax_gt6_ml``, ``tmax_gt10_ml``, ``hir`` and ``seconds`` (whole run,
    reading included), among others. ``config`` overrides every option; ``method`` is a shortcut.
    ``method="cnn"`` reads Tmax with a trained net (``weights``: a model folder or Hub repo,
    default the shipped ``perfusion`` one); CBF, CBV and MTT then come from ``config.method``.
    ``aif_mask``: a NIfTI mask on the series' grid whose voxels give the AIF (this function's own
    ``aif_mask.nii.gz``, edited in a viewer, is one) instead of the automatic choice.
    """
    _check_method(method, weights)  # before the slow read
    start = perf_counter()
    series = load_series(path)
    region = None if aif_mask is None else read_aif_region(aif_mask, series)
    maps = perfusion_maps(series, method, progress, config, weights, region)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_maps(maps, series.to_nifti, out_dir)
    figures.write_pictures(maps, series.data, out_dir)
    return {**maps.summary, "seconds": round(perf_counter() - start, 3), "out_dir": str(out_dir)}


def perfusion_maps(
    series: Series,
    method: str = TEMPLATE,
    progress: Progress | None = None,
    config: PerfusionConfig | None = None,
    weights: str | None = None,
    aif_region: np.ndarray | None = None,
) -> PerfusionMaps:
    """The maps of a loaded series by ``method`` (one of :class:`PerfusionConfig`'s) or, for
    ``method="cnn"``, with a net's Tmax; ``aif_region`` (see :func:`compute_maps`) replaces the
    automatic AIF."""
    _check_method(method, weights)
    if method == CNN:  # load first: missing weights fail before the slow part
        from workbench.weights import load  # torch only when a net is asked for

        return cnn_maps(series, load(weights or "perfusion"), progress, config, aif_region)
    return compute_maps(series, config or PerfusionConfig(method=method), progress, aif_region)


def read_aif_region(path: str | Path, series: Series) -> np.ndarray:
    """A NIfTI mask as a (Z, Y, X) bool array on ``series``' grid; a mask on another grid (other
    shape or voxel-to-world affine) is refused rather than resampled."""
    from workbench.io.nifti import load_nifti

    data, affine = load_nifti(path)
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    name = Path(path).name
    if data.ndim != 3:
        raise InputError(f"{name}: the AIF mask must be one 3D volume, got {data.shape}.")
    if data.shape != series.data.shape[2::-1] or not np.allclose(affine, series.affine, atol=1e-3):
        raise InputError(
            f"{name}: the AIF mask is not on the series' grid (shape or position differ); draw "
            "it on the series itself, e.g. over this tool's aif_mask.nii.gz."
        )
    return np.transpose(data > 0, (2, 1, 0))


def cnn_maps(
    series: Series,
    bundle: ModelBundle,
    progress: Progress | None = None,
    config: PerfusionConfig | None = None,
    aif_region: np.ndarray | None = None,
) -> PerfusionMaps:
    """The maps of a loaded series with the trained net's Tmax (``bundle``, the perfusion task's
    model); CBF, CBV and MTT by ``config.method`` (default the template fit)."""
    report = progress or (lambda fraction, message: None)
    config = config or PerfusionConfig()
    maps = compute_maps(series, config, lambda f, message: report(0.85 * f, message), aif_region)
    report(0.9, "Tmax by the trained CNN")
    maps = learned_tmax(maps, series, bundle, config)
    report(1.0, "done")
    return maps


def _check_method(method: str, weights: str | None) -> None:
    if method == CNN:
        return
    PerfusionConfig(method=method)  # an unknown name fails here, before the slow read
    if weights is not None:
        raise InputError("weights are only used by the cnn method; add --method cnn.")


def learned_tmax(
    maps: PerfusionMaps, series: Series, bundle: ModelBundle, config: PerfusionConfig
) -> PerfusionMaps:
    """``maps`` with the net's Tmax (inside the mask) and the volumes that follow from it."""
    from workbench.data.perfusion import InputSpec, network_inputs
    from workbench.models.perfusion import predict_volume

    spec = InputSpec(**bundle.config.preprocess)
    inputs = network_inputs(series, maps, spec, config)
    tmax = np.where(maps.mask, predict_volume(bundle.model, inputs), 0.0).astype(np.float32)
    volumes = hypoperfusion_volumes(tmax, maps.mask, series.voxel_volume_ml, config.tmax_thresholds)
    summary = {
        **maps.summary,
        **volumes,
        "method": CNN,
        "cbf_cbv_mtt_method": config.method,
        "model": bundle.config.title,
        "weights": bundle.source,
    }
    return replace(maps, tmax=tmax, summary=summary)


def write_maps(
    maps: PerfusionMaps, to_nifti: Callable[[np.ndarray], nib.Nifti1Image], out_dir: Path
) -> list[Path]:
    """Save each map as ``<name>.nii.gz`` with the series' affine, and ``aif_mask.nii.gz``:
    1 at the voxels averaged into the AIF, so a reader can check they lie in arteries."""
    volumes = {name: getattr(maps, name) for name in MAP_NAMES}
    volumes["aif_mask"] = np.zeros(maps.mask.shape, np.uint8)
    volumes["aif_mask"][tuple(maps.aif_voxels.T)] = 1
    written = []
    for name, volume in volumes.items():
        target = out_dir / f"{name}.nii.gz"
        nib.save(to_nifti(volume), target)
        written.append(target)
    return written
