"""Automatic arterial input function: cluster analysis after Mouridsen et al. 2006.

Arterial curves are large (high area under the curve), early and narrow, and smooth compared with
noisy voxels of the same size. Keep the top 10% by area, drop the roughest quarter of those, then
cluster the area-normalised curves with k-means and keep the cluster with the earliest first
moment (early *and* narrow: both pull the centroid time forward); cluster that cluster once more.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from workbench.errors import InputError


def select_aif(
    curves: np.ndarray,
    *,
    area_quantile: float = 0.90,
    roughness_quantile: float = 0.75,
    n_clusters: int = 5,
    rounds: int = 2,
) -> np.ndarray:
    """Indices (into the rows of ``curves``, (N, T) ΔR2*) of the voxels that form the AIF."""
    curves = np.asarray(curves, dtype=np.float64)
    area = curves.sum(axis=1)
    candidates = np.flatnonzero(area >= np.quantile(area, area_quantile))
    candidates = candidates[area[candidates] > 0]
    if len(candidates) < n_clusters:
        raise InputError("too few voxels with contrast to find an artery; check the series.")
    # Roughness relative to size: the raw sum of squared second differences grows with the
    # square of the amplitude and would throw out the largest (arterial) curves first.
    shapes = curves[candidates] / area[candidates, None]
    roughness = (np.diff(shapes, 2, axis=1) ** 2).sum(axis=1)
    smooth = roughness <= np.quantile(roughness, roughness_quantile)
    candidates, shapes = candidates[smooth], shapes[smooth]
    times = np.arange(curves.shape[1])
    for _ in range(rounds):
        if len(candidates) < 2 * n_clusters:
            break
        # Start from the means of equal groups ordered by first moment (as the OSIPI
        # implementation does): deterministic, and k-means converges in a few steps.
        groups = np.array_split(np.argsort(shapes @ times), n_clusters)
        start = np.stack([shapes[group].mean(axis=0) for group in groups])
        k_means = KMeans(n_clusters=n_clusters, init=start, n_init=1, max_iter=100).fit(shapes)
        earliest = int(np.argmin(k_means.cluster_centers_ @ times))
        keep = k_means.labels_ == earliest
        candidates, shapes = candidates[keep], shapes[keep]
    return candidates
