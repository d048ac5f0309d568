"""Predicted masks after the network: what a segmentation answer is cleaned of."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its connected components (26-connected in a volume, 8 in a slice) of
    fewer than ``min_voxels`` voxels: specks a network leaves on healthy slices, which published
    LGG pipelines remove once a whole patient is segmented."""
    if min_voxels <= 0 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]
