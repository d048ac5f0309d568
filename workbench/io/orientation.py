"""One orientation for every volume the models see: axial slices as DICOM and the LGG
``kaggle_3m`` tifs show them.

Slices run from inferior to superior, rows from anterior to posterior, columns from the patient's
right to left (radiological): the voxel axes of DICOM's patient system, "LPS". A NIfTI may store
its voxels in any order (RAS from most converters, sagittal or coronal acquisitions permuted);
nibabel's orientation tools turn it to this one and back, so a mask can be written on the
input's own grid.
"""

from __future__ import annotations

import numpy as np
from nibabel import orientations

AXIAL = orientations.axcodes2ornt("LPS")


def _transform(affine: np.ndarray, inverse: bool = False) -> np.ndarray:
    stored = orientations.io_orientation(affine)
    return (
        orientations.ornt_transform(AXIAL, stored)
        if inverse
        else orientations.ornt_transform(stored, AXIAL)
    )


def to_axial(xyz: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """An (X, Y, Z, ...) voxel array stored under ``affine``, turned to :data:`AXIAL`."""
    return orientations.apply_orientation(xyz, _transform(affine))


def from_axial(xyz: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_axial`: an array in :data:`AXIAL` back to ``affine``'s order."""
    return orientations.apply_orientation(xyz, _transform(affine, inverse=True))


def axial_zooms(zooms: tuple[float, ...], affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (x, y, z) in :data:`AXIAL` order."""
    out = np.ones(3)
    out[_transform(affine)[:, 0].astype(int)] = (*zooms, 1.0, 1.0)[:3]
    return out
