"""From DSC signal to ΔR2*: cleaning, brain mask, bolus arrival, the log-ratio transform."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from workbench.errors import InputError


def clean(data: np.ndarray, max_missing_fraction: float = 0.05) -> np.ndarray:
    """NaN/inf → 0; all-zero (slice, time point) frames bridged by linear interpolation in time.

    The study zero-fills up to 5% missing frames; a zero signal has no ΔR2*, so each zero frame
    is bridged from its slice's neighbouring time points instead of read as a huge drop.
    """
    data = np.nan_to_num(np.asarray(data, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    present = data.any(axis=(1, 2))  # (Z, T)
    missing = ~present & present.any(axis=1, keepdims=True)  # ignore slices empty throughout
    fraction = missing.sum() / max(1, present.any(axis=1).sum() * data.shape[3])
    if fraction > max_missing_fraction:
        raise InputError(
            f"{fraction:.0%} of the (slice, time point) frames are empty, above "
            f"{max_missing_fraction:.0%}; export the complete series."
        )
    if missing.any():
        warnings.warn(f"{int(missing.sum())} empty frames were interpolated in time.", stacklevel=2)
        times = np.arange(data.shape[3])
        for z in np.flatnonzero(missing.any(axis=1)):
            good = np.flatnonzero(present[z])
            for t in np.flatnonzero(missing[z]):
                after = np.searchsorted(good, t)
                lo, hi = good[max(after - 1, 0)], good[min(after, len(good) - 1)]
                share = 0.0 if hi == lo else (times[t] - lo) / (hi - lo)
                data[z, ..., t] = (1 - share) * data[z, ..., lo] + share * data[z, ..., hi]
    return data


def brain_mask(
    data: np.ndarray,
    fraction: float = 0.10,
    *,
    spacing: tuple[float, float, float] | None = None,
    core_mm: float = 15.0,
) -> np.ndarray:
    """The brain on the pre-bolus baseline image, without the eyes, scalp and sinuses.

    Signal above ``fraction`` of the brightest (the study's threshold) also keeps the bright
    vitreous of the eyes, orbital and scalp fat. So the mask is eroded by ``core_mm`` (a
    ball in mm over ``spacing``, slice, row, column), which cuts the thin bridges to the orbits
    and scalp; the largest connected part is the brain; dilating it by the same ball inside the
    threshold mask restores its border, and hole filling per slice keeps the dark sulci and
    arteries. Without ``spacing``, and in volumes too small to hold the ball, the threshold
    mask is kept.
    """
    mean = data.mean(axis=3)
    arrival = bolus_arrival(data[mean > fraction * np.percentile(mean, 99.9)].mean(axis=0))
    baseline = np.median(data[..., : max(arrival, 1)], axis=3)
    mask = baseline > fraction * np.percentile(baseline, 99.9)
    if spacing is not None:
        ball = _ball(spacing, core_mm)
        core, parts = ndimage.label(ndimage.binary_erosion(mask, ball))
        if parts:
            largest = 1 + int(np.argmax(ndimage.sum_labels(core > 0, core, range(1, parts + 1))))
            mask &= ndimage.binary_dilation(core == largest, ball)
    return np.stack([ndimage.binary_fill_holes(plane) for plane in mask])


def _ball(spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """An ellipsoid of ``radius_mm`` in voxels of ``spacing`` (at least one voxel each way)."""
    radii = np.maximum(1, np.round(radius_mm / np.asarray(spacing, float)).astype(int))
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    return sum((axis / r) ** 2 for axis, r in zip(grid, radii, strict=True)) <= 1.0


def bolus_arrival(curve: np.ndarray, drop_fraction: float = 0.1) -> int:
    """Index of the first frame of the bolus in a (brain-mean) signal curve.

    The bolus is where the signal first falls by ``drop_fraction`` of its full drop below the
    pre-bolus level (median of the frames before half-way to the minimum).
    """
    low = int(np.argmin(curve))
    level = float(np.median(curve[: max(2, low // 2)]))
    below = np.flatnonzero(curve[: low + 1] < level - drop_fraction * (level - curve[low]))
    return int(below[0]) if len(below) else low


def delta_r2(data: np.ndarray, mask: np.ndarray, arrival: int, te: float) -> np.ndarray:
    """ΔR2*(t) = −ln(S(t)/S0) / TE in 1/s for the voxels in ``mask``: (N, T) float32.

    S0 is the median of the frames before the bolus (the first is kept: a median ignores a
    single T1-saturated frame). Non-positive signal is clipped to 1% of S0.
    """
    signal = data[mask]
    s0 = np.median(signal[:, : max(arrival, 1)], axis=1, keepdims=True)
    s0 = np.maximum(s0, np.finfo(np.float32).tiny)
    ratio = np.clip(signal / s0, 0.01, None)
    return (-np.log(ratio) / te).astype(np.float32)
