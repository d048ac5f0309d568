"""Perfusion maps from a DSC series: Tmax, CBF, CBV, MTT and the stroke-triage volumes.

Units. CBF in ml/100 g/min = ``k · max(CBF·R) · 60 · 100``, CBV in ml/100 g =
``k · 100 · ∫C / ∫AIF``, MTT = CBV / CBF in seconds, with ``k = (1 − Hct_large) /
((1 − Hct_small) · ρ)``: the arterial ΔR2* measures contrast in large-vessel plasma while
tissue capillaries hold less haematocrit (Hct 0.45 vs 0.25), and ρ = 1.04 g/ml turns ml of
tissue into 100 g. Setting both haematocrits to 0 and ρ to 1 gives the plain ratios used by
the OSIPI reference data. Absolute values also assume the same ΔR2*–concentration relation in
artery and tissue, which is only approximately true: read CBF and CBV as relative maps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from workbench.errors import InputError
from workbench.io.series import Series
from workbench.perfusion.aif import arterial_check, select_aif
from workbench.perfusion.deconvolution import METHODS, deconvolve
from workbench.perfusion.signal import bolus_arrival, brain_mask, clean, delta_r2
from workbench.perfusion.templates import fit_templates

Progress = Callable[[float, str], None]
MIN_TIME_POINTS = 10
# How Tmax and CBF are read: the Bayesian fit of model curves (templates.py), or the peak of an
# SVD method's residue (deconvolution.METHODS). The fit is the default: on known continuous
# delays it reads Tmax within about 1 s where the SVD methods read it 2–4.5 s late, and CBF
# closer to the truth (bench/perfusion_delay.py), at 1.6× oSVD's CPU time per voxel.
Method = Literal["template", "ssvd", "bsvd", "osvd"]
TEMPLATE = "template"


@dataclass
class PerfusionConfig:
    """Options of the pipeline; the defaults follow the study and the usual clinical setup."""

    method: Method = TEMPLATE  # or a key of deconvolution.METHODS
    oi_threshold: float = 0.035  # oSVD oscillation-index limit (Wu 2003)
    svd_threshold: float | None = None  # fixed truncation for sSVD/bSVD; None: the method's own
    mask_fraction: float = 0.10  # brain mask: mean signal above this fraction of the brightest
    min_cbv_fraction: float = 0.25  # below this fraction of the median CBV: CSF, not tissue
    max_missing_fraction: float = 0.05
    te: float = 0.03  # s, used when the series does not say; CBF/CBV/Tmax do not depend on it
    hematocrit_large: float = 0.45
    hematocrit_small: float = 0.25
    tissue_density: float = 1.04  # g/ml
    tmax_thresholds: tuple[float, float] = (6.0, 10.0)  # s: hypoperfused and severely so
    workers: int = 2

    def __post_init__(self) -> None:
        if self.method != TEMPLATE and self.method not in METHODS:
            raise InputError(
                f"unknown perfusion method {self.method!r}; choose one of "
                f"{', '.join([TEMPLATE, *METHODS])} (or cnn for a trained net's Tmax)."
            )

    @property
    def scale(self) -> float:
        """The haematocrit and density factor ``k`` of CBF and CBV."""
        return (1 - self.hematocrit_large) / ((1 - self.hematocrit_small) * self.tissue_density)


@dataclass
class PerfusionMaps:
    """Maps on the series grid (Z, Y, X); zero outside the brain mask."""

    tmax: np.ndarray  # s
    cbf: np.ndarray  # ml/100 g/min
    cbv: np.ndarray  # ml/100 g
    mtt: np.ndarray  # s
    mask: np.ndarray  # bool: brain-mask voxels with tissue perfusion (CSF and bone left out)
    aif: np.ndarray  # (T,) ΔR2* of the arterial input, 1/s
    aif_voxels: np.ndarray  # (M, 3) z, y, x of the voxels averaged into the AIF
    times: np.ndarray  # (T,) s
    summary: dict = field(default_factory=dict)


def blood_flow(residue_peak: np.ndarray, scale: float) -> np.ndarray:
    """CBF in ml/100 g/min from the peak of CBF·R(t) in 1/s."""
    return scale * 6000.0 * residue_peak


def blood_volume(curves: np.ndarray, aif: np.ndarray, scale: float) -> np.ndarray:
    """CBV in ml/100 g: the area of each tissue curve relative to the arterial one."""
    return scale * 100.0 * curves.sum(axis=-1) / aif.sum()


def hypoperfusion_volumes(
    tmax: np.ndarray, mask: np.ndarray, voxel_ml: float, thresholds: tuple[float, float]
) -> dict[str, float]:
    """Volumes (ml) of Tmax above each threshold and the hypoperfusion intensity ratio."""
    low, high = thresholds
    above_low = float((tmax[mask] > low).sum() * voxel_ml)
    above_high = float((tmax[mask] > high).sum() * voxel_ml)
    return {
        f"tmax_gt{low:g}_ml": round(above_low, 2),
        f"tmax_gt{high:g}_ml": round(above_high, 2),
        "hir": round(above_high / above_low, 3) if above_low > 0 else 0.0,
    }


def _given_aif(region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices, among the mask's voxels, of the user's AIF region."""
    if region.shape != mask.shape:
        raise InputError(
            f"the AIF region is {region.shape[::-1]} voxels (x, y, z) but the series is "
            f"{mask.shape[::-1]}; draw it on the series' own grid."
        )
    chosen = np.flatnonzero(region[mask])
    if not len(chosen):
        raise InputError(
            "the AIF region has no voxel inside the brain mask; draw it over an artery (the "
            "middle cerebral artery, say) within the head."
        )
    return chosen


def tmax_and_flow(
    curves: np.ndarray,
    aif: np.ndarray,
    tr: float,
    config: PerfusionConfig,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tmax (s) and CBF (1/s, see :func:`blood_flow`) of each curve by ``config.method``."""
    if config.method == TEMPLATE:
        fit = fit_templates(curves, aif, tr, workers=config.workers, progress=progress)
        return fit.tmax, fit.flow
    residue = deconvolve(
        curves,
        aif,
        tr,
        config.method,
        threshold=config.svd_threshold,
        oi_threshold=config.oi_threshold,
        workers=config.workers,
        progress=progress,
    )
    return residue.delay, residue.peak


def compute_maps(
    series: Series,
    config: PerfusionConfig | None = None,
    progress: Progress | None = None,
    aif_region: np.ndarray | None = None,
) -> PerfusionMaps:
    """Run the whole chain: clean → mask → ΔR2* → AIF → Tmax and CBF → maps and volumes.

    ``aif_region`` ((Z, Y, X) bool on the series' grid, e.g. drawn over an artery in a viewer)
    replaces the automatic AIF selection: the AIF is the mean curve of its voxels in the brain
    mask."""
    config = config or PerfusionConfig()
    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    if series.data.shape[3] < MIN_TIME_POINTS:
        raise InputError(
            f"the series has {series.data.shape[3]} time points; a DSC perfusion series needs at "
            f"least {MIN_TIME_POINTS} (give the 4D series, not a single volume or map)."
        )
    report(0.05, "cleaning and masking")
    data = clean(series.data, config.max_missing_fraction)
    spacing = tuple(np.linalg.norm(series.affine[:3, :3], axis=0)[::-1])  # slice, row, column
    mask = brain_mask(data, config.mask_fraction, spacing=spacing)
    arrival = bolus_arrival(data[mask].mean(axis=0))
    conc = delta_r2(data, mask, arrival, series.te or config.te)

    report(0.2, "finding the arterial input function")
    chosen = select_aif(conc) if aif_region is None else _given_aif(aif_region, mask)
    # in index order: the same voxels give the same AIF to the last bit however they were
    # chosen (a last-bit change can move the template fit's Tmax across a 1 ms rounding step)
    chosen = np.sort(chosen)
    aif = conc[chosen].mean(axis=0)
    aif_voxels = np.argwhere(mask)[chosen]

    # CSF, ventricles and bone carry no tracer: their "Tmax" is the argmax of noise, and they
    # are left out before the costly step.
    cbv_values = blood_volume(conc, aif, config.scale)
    perfused = cbv_values > config.min_cbv_fraction * np.median(cbv_values)
    mask[mask] = perfused
    message = f"reading Tmax and CBF ({config.method})"
    report(0.3, message)
    tmax, flow = tmax_and_flow(
        conc[perfused], aif, series.tr, config, lambda share: report(0.3 + 0.6 * share, message)
    )
    cbf_values = blood_flow(flow, config.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        mtt_values = np.where(cbf_values > 0, 60.0 * cbv_values[perfused] / cbf_values, 0.0)

    maps = {name: np.zeros(mask.shape, np.float32) for name in ("tmax", "cbf", "cbv", "mtt")}
    for name, values in (
        ("tmax", tmax),
        ("cbf", cbf_values),
        ("cbv", cbv_values[perfused]),
        ("mtt", mtt_values),
    ):
        maps[name][mask] = values
    summary = {
        "method": config.method,
        **hypoperfusion_volumes(maps["tmax"], mask, series.voxel_volume_ml, config.tmax_thresholds),
        "tissue_ml": round(float(mask.sum() * series.voxel_volume_ml), 1),
        "aif_voxels": len(chosen),
        "aif_source": "automatic" if aif_region is None else "given region",
        "aif_check": arterial_check(aif, conc.mean(axis=0)),
        "bolus_arrival_s": round(float(series.times[arrival]), 2),
        "tr_s": round(float(series.tr), 4),
        "seconds": round(time.perf_counter() - start, 3),
    }
    report(1.0, "done")
    return PerfusionMaps(
        **maps, mask=mask, aif=aif, aif_voxels=aif_voxels, times=series.times, summary=summary
    )
