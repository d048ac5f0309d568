"""Size limits on everything a user can hand the workbench.

Checked *before* the expensive step (reading, decoding, extracting) so that an oversized or
hostile input costs a header read, not the machine's memory.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputError


@dataclass(frozen=True)
class Limits:
    """Upper (and lower) bounds on inputs; the defaults suit a single-machine app."""

    max_file_bytes: int = 1 << 30  # one upload or one file inside a zip (1 GiB)
    max_files: int = 5000  # files in one zip (a 4D DICOM series has a few thousand)
    # Sum over a zip's entries: the 4D volume limit's float32 size (256 MB), which holds that
    # volume's 16-bit DICOM files with their headers; a bomb of any ratio stops there.
    max_total_uncompressed_bytes: int = 1 << 28
    max_compression_ratio: float = 200.0  # per zip entry; real images compress < 50x
    # Entries up to this size skip the ratio check: a blank segmentation mask (a kaggle_3m
    # _mask.tif, 192 kB of zeros) compresses 500:1, and the total above still bounds the zip.
    ratio_floor_bytes: int = 1 << 20
    max_pixels: int = 8192 * 8192  # rows x columns of one image or frame
    min_side: int = 8  # anything smaller is not an image a model can read
    max_working_side: int = 1024  # larger pictures are box-averaged down to this as decoded
    # 3D/4D arrays: 256 MB as float32 (e.g. 128x128x32x128). Perfusion needs about 14 bytes a
    # voxel, so this keeps one request under 1 GB of working memory.
    max_volume_voxels: int = 1 << 26


DEFAULT_LIMITS = Limits()


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.0f} MB"


def check_file_size(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> int:
    """Return the size of ``path`` in bytes; InputError when missing, empty or too big."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: no such file; check the path.")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name}: the file is empty; upload the image again.")
    if size > limits.max_file_bytes:
        raise InputError(
            f"{path.name}: the file is {_mib(size)}, above the {_mib(limits.max_file_bytes)} "
            "limit; upload a smaller file."
        )
    return size


def check_image_size(
    rows: int, cols: int, source: str, limits: Limits = DEFAULT_LIMITS, frames: int = 1
) -> None:
    """InputError unless a rows x cols image (x frames) fits the pixel and voxel limits."""
    if rows < limits.min_side or cols < limits.min_side:
        raise InputError(
            f"{source}: the image is {rows}x{cols} pixels, too small to analyse; "
            f"both sides must be at least {limits.min_side} pixels."
        )
    if rows * cols > limits.max_pixels:
        raise InputError(
            f"{source}: the image is {rows}x{cols} pixels, above the limit of "
            f"{limits.max_pixels:,} pixels; downsample it first."
        )
    check_volume_size((frames, rows, cols), source, limits)


def check_volume_size(shape: tuple[int, ...], source: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """InputError when an array of ``shape`` would hold more than ``max_volume_voxels``."""
    voxels = 1
    for n in shape:
        voxels *= int(n)
    if voxels > limits.max_volume_voxels:
        dims = "x".join(str(int(n)) for n in shape)
        raise InputError(
            f"{source}: the data is {dims} = {voxels:,} values, above the limit of "
            f"{limits.max_volume_voxels:,}; crop or split it first."
        )


HEAD_BYTES = 1024  # enough for a NIfTI-2 header (540 bytes) or a DICOM preamble and magic


def read_bounded(
    path: str | os.PathLike,
    limits: Limits = DEFAULT_LIMITS,
    check_head: Callable[[bytes], None] | None = None,
) -> bytes:
    """The file's bytes, gunzipped when it is gzip, never more than ``max_file_bytes``.

    Decompressing through ``zlib`` with ``max_length`` (rather than ``gzip.open().read()``)
    stops a gzip bomb after ``max_file_bytes`` instead of after it has filled the memory.
    ``check_head`` sees the first ``HEAD_BYTES`` (gunzipped) first and may refuse the file from
    what its header declares, before the rest is unpacked.
    """
    path = Path(path)
    check_file_size(path, limits)
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(f"{path.name}: the file cannot be read; check its permissions.") from None
    check_head = check_head or (lambda head: None)
    if not data.startswith(b"\x1f\x8b"):
        check_head(data[:HEAD_BYTES])
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, HEAD_BYTES)
        check_head(out)
        out += inflater.decompress(
            inflater.unconsumed_tail, max(limits.max_file_bytes + 1 - len(out), 1)
        )
    except zlib.error:
        raise InputError(
            f"{path.name}: the gzip compression is corrupt; compress the file again."
        ) from None
    if len(out) > limits.max_file_bytes:
        raise InputError(
            f"{path.name}: the file unpacks to more than {_mib(limits.max_file_bytes)}; "
            "upload a smaller file."
        )
    if not inflater.eof:
        raise InputError(f"{path.name}: the gzip file is truncated; copy or download it again.")
    if not out:
        raise InputError(f"{path.name}: the gzip file is empty; upload the image again.")
    return out
