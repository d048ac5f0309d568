"""NIfTI-1/2 volumes through nibabel (``.nii`` and ``.nii.gz``).

:func:`load_nifti` gives the raw array and affine (for series and perfusion); :func:`nifti_image`
turns a 3D volume into an :class:`Image` of axial slices for the single-image tasks.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np

from workbench.errors import InputError
from workbench.io.images import Image
from workbench.io.limits import (
    DEFAULT_LIMITS,
    HEAD_BYTES,
    Limits,
    check_image_size,
    check_volume_size,
    read_bounded,
)
from workbench.io.orientation import axial_zooms, to_axial

# sizeof_hdr, the first int32 of the header, identifies the version and the byte order.
_HEADER_SIZES = {348: nib.Nifti1Image, 540: nib.Nifti2Image}


def _image_class(data: bytes) -> type[nib.Nifti1Image] | None:
    if len(data) < 4:
        return None
    for order in "<>":
        (size,) = struct.unpack(f"{order}i", data[:4])
        if size in _HEADER_SIZES:
            return _HEADER_SIZES[size]
    return None


def is_nifti(data: bytes) -> bool:
    """Whether ``data`` (already gunzipped) starts like a NIfTI-1 or NIfTI-2 header."""
    cls = _image_class(data)
    magic_at = 344 if cls is nib.Nifti1Image else 4
    return cls is not None and data[magic_at : magic_at + 3] in (b"n+1", b"n+2", b"ni1", b"ni2")


def is_nifti_file(path: str | os.PathLike) -> bool:
    """Whether a file is a NIfTI volume by its content, gzipped or not: an upload or an export
    may have lost its ``.nii`` / ``.nii.gz`` name."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * HEAD_BYTES)  # gzip: enough compressed bytes for the header
        if head.startswith(b"\x1f\x8b"):
            head = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(head, HEAD_BYTES)
    except (OSError, zlib.error):
        return False
    return is_nifti(head[:HEAD_BYTES])


def check_declared_size(head: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a NIfTI whose header declares a volume above the limits, from the header alone,
    so that a small .nii.gz declaring gigabytes is refused before it is unpacked."""
    cls = _image_class(head) if is_nifti(head) else None
    if cls is None:
        return
    try:
        header = cls.header_class(head[: cls.header_class.sizeof_hdr], check=False)
        shape = header.get_data_shape()
    except Exception:  # a bad header is refused later, with the full parse's message
        return
    check_volume_size(shape, source, limits)


def parse_nifti(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> nib.Nifti1Image:
    """A NIfTI-1 or -2 image from its (gunzipped) bytes; InputError when it is not one."""
    cls = _image_class(data)
    if cls is None:
        raise InputError(f"{source}: not a NIfTI file; check that it is a .nii or .nii.gz volume.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = cls.from_bytes(data)
            shape = img.shape
    except Exception:  # nibabel raises many types on a bad header; the text is not ours to show
        raise InputError(
            f"{source}: the NIfTI header is invalid (a .hdr/.img pair is not supported); "
            "save the volume as a single .nii or .nii.gz file."
        ) from None
    check_volume_size(shape, source, limits)
    return img


def _data(img: nib.Nifti1Image, source: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = img.get_fdata(dtype=np.float32)
    except MemoryError:
        raise InputError(f"{source}: the volume is too large to load in memory.") from None
    except Exception:  # short or corrupt voxel data
        raise InputError(
            f"{source}: the NIfTI voxel data is shorter than its header says (truncated file); "
            "save the volume again."
        ) from None
    if not np.isfinite(data).all():
        raise InputError(
            f"{source}: the volume contains NaN or infinite values; replace them (for example "
            "with 0) and save it again."
        )
    return data


def load_nifti(
    path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS
) -> tuple[np.ndarray, np.ndarray]:
    """(voxels as float32 with scl_slope/inter applied, 4x4 voxel-to-world affine)."""
    path = Path(path)
    data = read_bounded(path, limits, partial(check_declared_size, source=path.name, limits=limits))
    img = parse_nifti(data, path.name, limits)
    return _data(img, path.name), np.asarray(img.affine, dtype=np.float64)


def nifti_image(
    data: bytes, source: str, *, all_frames: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Image:
    """A 2D/3D NIfTI volume as axial slices (middle one, or all as (F, H, W)), in the one
    orientation of :mod:`workbench.io.orientation` (anterior at the top, radiological)."""
    img = parse_nifti(data, source, limits)
    if len(img.shape) > 3 and any(n > 1 for n in img.shape[3:]):
        raise InputError(
            f"{source}: this is a 4D series ({'x'.join(map(str, img.shape))}); "
            "open it in the perfusion tools instead."
        )
    volume = to_axial(_data(img, source).reshape((*img.shape, 1, 1)[:3]), img.affine)
    zooms = axial_zooms(img.header.get_zooms(), img.affine)
    cols, rows, depth = volume.shape
    check_image_size(rows, cols, source, limits)
    slices = np.transpose(volume, (2, 1, 0))  # (z, y from anterior, x from the right)
    header = {
        "Format": "NIfTI",
        "StoredDataType": img.header.get_data_dtype().name,
        "Shape": list(volume.shape),
        "VoxelSize": [round(float(z), 6) for z in zooms],
    }
    pixels = np.ascontiguousarray(slices if all_frames else slices[depth // 2])
    return Image(pixels, (float(zooms[1]), float(zooms[0])), "OT", header, source, frames=depth)
