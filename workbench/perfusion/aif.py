"""Automatic arterial input function: cluster analysis after Mouridsen et al. 2006.

Arterial curves are large (high area), early, narrow and high. Mouridsen keeps the top 10% by
area and drops the roughest quarter, but a narrow arterial peak (often clipped by the noise
floor) is rough by construction, so that filter throws out the arteries and leaves grey
matter. Here roughness only removes outliers among the candidates; the candidates are then
ranked by how arterial they look (high, early, narrow), and the best of them clustered with
k-means. The cluster kept is the most arterial one (highest peak per frame of width among
those arriving no later than the candidates' median), clustered once more. The result is
checked against the brain's mean curve and replaced, with a warning, by the earliest of the
highest peaks when it is not arterial.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.cluster import KMeans

from workbench.errors import InputError


@dataclass(frozen=True)
class CurveShape:
    """Peak height, time to peak and full width at half maximum (frames) of curves (N, T)."""

    peak: np.ndarray
    ttp: np.ndarray
    fwhm: np.ndarray

    @classmethod
    def of(cls, curves: np.ndarray) -> CurveShape:
        curves = np.atleast_2d(curves)
        peak = curves.max(axis=1)
        return cls(peak, curves.argmax(axis=1), (curves >= peak[:, None] / 2).sum(axis=1))


def select_aif(
    curves: np.ndarray,
    *,
    area_quantile: float = 0.90,
    best_fraction: float = 0.25,
    n_clusters: int = 5,
    rounds: int = 2,
) -> np.ndarray:
    """Indices (into the rows of ``curves``, (N, T) ΔR2*) of the voxels that form the AIF."""
    curves = np.asarray(curves, dtype=np.float64)
    area = curves.sum(axis=1)
    candidates = np.flatnonzero((area >= np.quantile(area, area_quantile)) & (area > 0))
    if len(candidates) < n_clusters:
        raise InputError("too few voxels with contrast to find an artery; check the series.")
    candidates = candidates[~_rough_outliers(curves[candidates])]
    shape = CurveShape.of(curves[candidates])
    # Rank, not threshold: what counts as high, early and narrow depends on the scan.
    score = rankdata(shape.peak) + rankdata(-shape.ttp) + rankdata(-shape.fwhm)
    keep = max(2 * n_clusters, int(best_fraction * len(candidates)))
    candidates = candidates[np.argsort(-score, kind="stable")[:keep]]
    for _ in range(rounds):
        if len(candidates) < 4 * n_clusters:  # a small cluster is already one kind of curve
            break
        candidates = _most_arterial_cluster(curves, candidates, n_clusters)
    return _checked(curves, candidates)


def _rough_outliers(curves: np.ndarray) -> np.ndarray:
    """Curves far rougher than the other candidates (peak-normalised second differences).

    Only outliers (above the upper quartile by three interquartile ranges) go: dropping a fixed
    share would remove the sharpest, clipped arterial peaks first.
    """
    shapes = curves / np.maximum(curves.max(axis=1, keepdims=True), 1e-12)
    roughness = (np.diff(shapes, 2, axis=1) ** 2).sum(axis=1)
    low, high = np.quantile(roughness, [0.25, 0.75])
    return roughness > high + 3 * (high - low)


def _most_arterial_cluster(
    curves: np.ndarray, candidates: np.ndarray, n_clusters: int
) -> np.ndarray:
    """k-means of the area-normalised curves; the members of the most arterial cluster."""
    shapes = curves[candidates] / curves[candidates].sum(axis=1, keepdims=True)
    times = np.arange(curves.shape[1])
    # Start from the means of equal groups ordered by first moment (as the OSIPI
    # implementation does): deterministic, and k-means converges in a few steps.
    groups = np.array_split(np.argsort(shapes @ times), n_clusters)
    start = np.stack([shapes[group].mean(axis=0) for group in groups])
    labels = KMeans(n_clusters=n_clusters, init=start, n_init=1, max_iter=100).fit(shapes).labels_
    # Mouridsen's earliest first moment, among the clusters as high as an artery can be: an
    # early but low cluster is tissue near the arteries, a high but late one is a vein.
    peaks = np.array(
        [curves[candidates[labels == k]].mean(axis=0).max() for k in range(n_clusters)]
    )
    moments = np.array([shapes[labels == k].mean(axis=0) @ times for k in range(n_clusters)])
    earliest = int(np.argmin(np.where(peaks >= peaks.max() / 2, moments, np.inf)))
    return candidates[labels == earliest]


def arterial_check(aif: np.ndarray, tissue: np.ndarray) -> dict:
    """How the AIF compares with the mean tissue curve: it must be earlier, narrower, higher."""
    a, t = CurveShape.of(aif), CurveShape.of(tissue)
    facts = {
        "peak_ratio": round(float(a.peak[0] / max(t.peak[0], 1e-12)), 2),
        "lead_frames": int(t.ttp[0] - a.ttp[0]),
        "width_ratio": round(float(a.fwhm[0] / max(t.fwhm[0], 1)), 2),
    }
    facts["arterial"] = bool(
        facts["peak_ratio"] >= 3 and facts["lead_frames"] >= 0 and facts["width_ratio"] < 1
    )
    return facts


def _checked(curves: np.ndarray, chosen: np.ndarray, fallback_size: int = 5) -> np.ndarray:
    """``chosen`` if its mean curve is arterial, else (with a warning) the earliest high peaks.

    The fallback takes the voxels peaking within a frame of the earliest among the high ones
    (at least half the ``fallback_size``-th highest peak), highest first: veins peak as high as
    arteries but later, and a scan with very few arterial voxels (two, in one simulated head)
    loses them inside any cluster.
    """
    tissue = curves.mean(axis=0)
    if arterial_check(curves[chosen].mean(axis=0), tissue)["arterial"]:
        return chosen
    shape = CurveShape.of(curves)
    size = min(fallback_size, len(curves))
    high = shape.peak >= np.sort(shape.peak)[-size] / 2
    pool = np.flatnonzero(high & (shape.ttp <= shape.ttp[high].min() + 1))
    fallback = pool[np.argsort(-shape.peak[pool], kind="stable")[:size]]
    facts = arterial_check(curves[fallback].mean(axis=0), tissue)
    warnings.warn(
        "the clustered AIF did not look arterial, so it is the "
        f"{len(fallback)} earliest high peaks instead ({facts['peak_ratio']}x the tissue peak, "
        f"{facts['lead_frames']} frames earlier); check its voxels (aif_mask.nii.gz).",
        stacklevel=3,
    )
    return fallback
