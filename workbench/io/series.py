"""4D (and 3D) series: a DICOM folder or zip, a multi-frame DICOM file, or a NIfTI file.

A DSC perfusion acquisition arrives as one DICOM file per (slice, time point), named in no useful
order. The order is rebuilt from the geometry and timing tags: slices by ImagePositionPatient
projected on the slice normal (SliceLocation when there is no position), time points by
TemporalPositionIdentifier, AcquisitionTime or InstanceNumber. Only technical tags are read;
no patient identifier is kept.

Array order: ``Series.data`` is ``(Z, Y, X, T)`` (slice, row, column, time), so ``data[z, ..., t]``
is one displayed image. ``Series.affine`` maps NIfTI voxel indices ``(x=column, y=row, z=slice)``
to RAS millimetres; ``Series.to_nifti`` does the transposition for writing maps.
"""

from __future__ import annotations

import tempfile
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from workbench.errors import InputError
from workbench.io.limits import check_file_size, check_volume_size, read_bounded
from workbench.io.nifti import check_declared_size, is_nifti_file, parse_nifti
from workbench.io.orientation import from_axial, to_axial

NIFTI_SUFFIXES = (".nii", ".nii.gz")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
MAX_MISSING_FRACTION = 0.05  # the study zero-fills up to 5% missing frames; beyond that, refuse


@dataclass
class Series:
    """An ordered 4D series; 3D volumes have ``T == 1``."""

    data: np.ndarray  # float32 (Z, Y, X, T)
    affine: np.ndarray  # 4x4, voxel (x=column, y=row, z=slice) -> RAS mm
    tr: float  # seconds between time points (0 for a single volume)
    times: np.ndarray  # (T,) seconds from the first time point
    te: float | None = None  # echo time in seconds, when the header says
    source: str = ""  # the file or folder name it was read from (never a full path)

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def to_nifti(self, volume: np.ndarray) -> nib.Nifti1Image:
        """A (Z, Y, X) or (Z, Y, X, T) array of this series' grid as a NIfTI image."""
        axes = (2, 1, 0, *range(3, volume.ndim))
        image = nib.Nifti1Image(np.transpose(volume, axes), self.affine)
        image.header.set_xyzt_units("mm", "sec")
        return image

    def axial(self) -> np.ndarray:
        """``data`` resliced to the one axial orientation the models see
        (:mod:`workbench.io.orientation`), still (Z, Y, X, T)."""
        return np.swapaxes(to_axial(np.swapaxes(self.data, 0, 2), self.affine), 0, 2)

    def from_axial(self, volume: np.ndarray) -> np.ndarray:
        """A (Z, Y, X, ...) array in that axial orientation, back on this series' own grid."""
        return np.swapaxes(from_axial(np.swapaxes(volume, 0, 2), self.affine), 0, 2)


def load_series(path: str | Path, tr: float | None = None) -> Series:
    """Read a DICOM folder, a zip of one, a (multi-frame) DICOM file or a 3D/4D NIfTI file.

    ``tr`` (seconds) overrides the time step read from the files, for headers known to be wrong.
    """
    path = Path(path)
    return replace(_load(path, tr), source=path.name)


def _load(path: Path, tr: float | None) -> Series:
    if not path.exists():
        raise InputError(f"{path.name}: no such file or folder; check the path.")
    if path.is_dir():
        return _series_from_files(sorted(p for p in path.rglob("*") if p.is_file()), tr, path.name)
    check_file_size(path)
    if path.name.lower().endswith(NIFTI_SUFFIXES) or is_nifti_file(path):
        return _load_nifti(path, tr)
    if zipfile.is_zipfile(path):  # by content: a renamed or extensionless zip is still a zip
        from workbench.io.archive import extract_zip

        with tempfile.TemporaryDirectory(prefix="series_") as tmp:
            return _series_from_files(extract_zip(path, Path(tmp)), tr, path.name)
    return _series_from_files([path], tr, path.name)


def _load_nifti(path: Path, tr: float | None) -> Series:
    # From bytes, not nib.load(path): nibabel picks the format by the file's extension, and an
    # upload may have none. read_bounded also refuses a header that declares too large a volume.
    data = read_bounded(path, check_head=partial(check_declared_size, source=path.name))
    image = parse_nifti(data, path.name)
    if len(image.shape) not in (3, 4):
        raise InputError(f"{path.name}: expected a 3D or 4D NIfTI image, got {image.shape}.")
    check_volume_size(image.shape, path.name)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception:  # short or corrupt voxel data
        raise InputError(
            f"{path.name}: the NIfTI voxel data is damaged or shorter than its header says; "
            "save the volume again."
        ) from None
    _check_finite(data, path.name)
    data = data[..., None] if data.ndim == 3 else data
    n_times = data.shape[3]
    step = tr if tr is not None else float(image.header.get_zooms()[3]) if n_times > 1 else 0.0
    if n_times > 1 and step <= 0:
        raise InputError(f"{path.name}: the header has no time step; give the TR in seconds.")
    if image.header.get_xyzt_units()[1] == "msec":
        step = step / 1000.0 if tr is None else step
    return Series(
        data=np.ascontiguousarray(np.transpose(data, (2, 1, 0, 3))),
        affine=image.affine.astype(np.float64),
        tr=step,
        times=np.arange(n_times) * step,
    )


def _check_finite(data: np.ndarray, source: str) -> None:
    """NaN or inf voxels would turn every map they touch into NaN, or empty its masks."""
    if not np.isfinite(data).all():
        raise InputError(
            f"{source}: the series holds NaN or infinite values; replace them (for example "
            "with 0) and save it again."
        )


@dataclass
class _Frame:
    """One 2D image of the series with the technical tags that place it in space and time."""

    pixels: np.ndarray
    position: np.ndarray  # ImagePositionPatient (LPS mm); NaN when absent
    slice_location: float | None
    orientation: np.ndarray  # 6 direction cosines
    spacing: tuple[float, float]  # (between rows, between columns) mm
    temporal_index: int | None
    acquisition_time: float | None  # seconds since midnight
    instance: int
    series: str
    echo_time: float | None
    repetition_time: float | None


def _series_from_files(files: list[Path], tr: float | None, source: str) -> Series:
    frames: list[_Frame] = []
    for file in files:
        try:
            ds = pydicom.dcmread(file)
        except (InvalidDicomError, OSError, ValueError):
            continue  # READMEs, DICOMDIR companions and the like sit next to real series
        if "PixelData" in ds:
            frames.extend(_frames(ds, source))
    if not frames:
        raise InputError(f"{source}: no DICOM images found; give a folder or zip of DICOM files.")
    series_ids = Counter(f.series for f in frames)
    if len(series_ids) > 1:
        chosen = series_ids.most_common(1)[0][0]
        warnings.warn(
            f"{source}: {len(series_ids)} series found; using the largest "
            f"({series_ids[chosen]} images).",
            stacklevel=2,
        )
        frames = [f for f in frames if f.series == chosen]
    return _assemble(frames, tr, source)


def _frames(ds: pydicom.Dataset, source: str) -> list[_Frame]:
    """Single-frame files give one frame; enhanced multi-frame files one per frame."""
    try:
        pixels = ds.pixel_array.astype(np.float32)
    except Exception:  # pydicom raises many types for an undecodable pixel stream
        raise InputError(
            f"{source}: the DICOM pixel data cannot be decoded; re-export the series uncompressed."
        ) from None
    n = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(n, *pixels.shape[-2:])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if n > 1 and per_frame is None:
        raise InputError(
            f"{source}: a multi-frame DICOM without per-frame positions cannot be ordered; "
            "export the series as one file per image."
        )
    try:
        return [
            _frame(ds, pixels[i], per_frame[i] if per_frame else None, source) for i in range(n)
        ]
    except InputError:
        raise
    except (TypeError, ValueError, IndexError, KeyError):  # a tag whose value is not a number
        raise InputError(
            f"{source}: the DICOM header holds an invalid timing or scaling value; "
            "re-export the series."
        ) from None


def _group(ds: pydicom.Dataset, frame: pydicom.Dataset | None, sequence: str):
    """A functional-group item: the frame's own, else the shared one, else None."""
    for holder in (frame, ds.get("SharedFunctionalGroupsSequence", [None])[0]):
        if holder is not None and sequence in holder:
            return holder[sequence][0]
    return None


def _tag(items: list, *keywords: str):
    """The first non-empty value of any keyword in any of the (possibly None) datasets."""
    for item in items:
        for keyword in keywords:
            if item is not None and keyword in item and item[keyword].value not in (None, ""):
                return item[keyword].value
    return None


def _numbers(value, count: int, keyword: str, source: str) -> np.ndarray:
    """``count`` finite numbers from a multi-valued geometry tag, else a one-line InputError."""
    try:
        numbers = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        numbers = np.array([])
    if numbers.shape != (count,) or not np.isfinite(numbers).all():
        raise InputError(
            f"{source}: the DICOM header's {keyword} does not hold {count} numbers; "
            "re-export the series."
        )
    return numbers


def _geometry(ipp, iop, spacing, source: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(position, orientation, spacing) checked: the series is placed in space from them."""
    position = (
        np.full(3, np.nan) if ipp is None else _numbers(ipp, 3, "ImagePositionPatient", source)
    )
    orientation = _numbers(iop, 6, "ImageOrientationPatient", source)
    if np.linalg.norm(np.cross(orientation[:3], orientation[3:])) < 0.5:
        raise InputError(
            f"{source}: the DICOM header's ImageOrientationPatient does not give two "
            "perpendicular directions; re-export the series."
        )
    rows, cols = _numbers(spacing, 2, "PixelSpacing", source)
    if rows <= 0 or cols <= 0:
        raise InputError(
            f"{source}: the DICOM header's PixelSpacing is not positive; re-export the series."
        )
    return position, orientation, (float(rows), float(cols))


def _frame(
    ds: pydicom.Dataset, pixels: np.ndarray, item: pydicom.Dataset | None, source: str
) -> _Frame:
    position = _group(ds, item, "PlanePositionSequence")
    orientation = _group(ds, item, "PlaneOrientationSequence")
    measures = _group(ds, item, "PixelMeasuresSequence")
    content = _group(ds, item, "FrameContentSequence")
    rescale = _group(ds, item, "PixelValueTransformationSequence")
    echo = _group(ds, item, "MREchoSequence")
    timing = _group(ds, item, "MRTimingAndRelatedParametersSequence")

    slope = float(_tag([rescale, ds], "RescaleSlope") or 1.0)
    intercept = float(_tag([rescale, ds], "RescaleIntercept") or 0.0)
    ipp = _tag([position, ds], "ImagePositionPatient")
    iop = _tag([orientation, ds], "ImageOrientationPatient")
    spacing = _tag([measures, ds], "PixelSpacing") or (1.0, 1.0)
    position, orientation, spacing = _geometry(ipp, iop or (1, 0, 0, 0, 1, 0), spacing, source)
    temporal = _tag([content, ds], "TemporalPositionIndex", "TemporalPositionIdentifier")
    stamp = _tag([content], "FrameAcquisitionDateTime")  # DT: YYYYMMDDHHMMSS.ffffff
    clock = str(stamp)[8:] if stamp is not None else _tag([ds], "AcquisitionTime")
    echo_ms = _tag([echo, ds], "EffectiveEchoTime", "EchoTime")
    tr_ms = _tag([timing, ds], "RepetitionTime")
    location = _tag([ds], "SliceLocation")
    return _Frame(
        pixels=pixels * slope + intercept,
        position=position,
        slice_location=float(location) if location is not None else None,
        orientation=orientation,
        spacing=spacing,
        temporal_index=int(temporal) if temporal is not None else None,
        acquisition_time=_seconds(str(clock)) if clock is not None else None,
        instance=int(_tag([content, ds], "InStackPositionNumber", "InstanceNumber") or 0),
        series=str(ds.get("SeriesInstanceUID", "")),
        echo_time=float(echo_ms) / 1000.0 if echo_ms is not None else None,
        repetition_time=float(tr_ms) / 1000.0 if tr_ms is not None else None,
    )


def _seconds(clock: str) -> float:
    """Seconds since midnight from a DICOM TM value (HHMMSS.ffffff, optional UTC offset)."""
    clock = clock.replace(":", "").split("+")[0].split("-")[0].ljust(6, "0")
    return int(clock[:2]) * 3600 + int(clock[2:4]) * 60 + float(clock[4:] or 0)


def _assemble(frames: list[_Frame], tr: float | None, source: str) -> Series:
    shapes = {f.pixels.shape for f in frames}
    if len(shapes) > 1:
        raise InputError(f"{source}: the images have different sizes {sorted(shapes)}.")
    slice_pos = _slice_positions(frames, source)
    slice_values, slice_of = np.unique(np.round(slice_pos, 2), return_inverse=True)
    time_of, times, step = _time_indices(frames, slice_of, tr, source)
    n_z, n_t = len(slice_values), int(time_of.max()) + 1
    rows, cols = next(iter(shapes))
    check_volume_size((n_z, rows, cols, n_t), source)

    data = np.zeros((n_z, rows, cols, n_t), dtype=np.float32)
    filled = np.zeros((n_z, n_t), dtype=bool)
    for frame, z, t in zip(frames, slice_of, time_of, strict=True):
        if filled[z, t]:
            raise InputError(
                f"{source}: two images share slice {z} and time point {t}; the folder seems to "
                "hold more than one acquisition, give one series."
            )
        data[z, ..., t] = frame.pixels
        filled[z, t] = True
    _check_finite(data, source)
    missing = 1.0 - filled.mean()
    if missing > MAX_MISSING_FRACTION:
        raise InputError(
            f"{source}: {missing:.0%} of the (slice, time point) images are missing, above "
            f"{MAX_MISSING_FRACTION:.0%}; export the complete series."
        )
    if missing > 0:
        warnings.warn(
            f"{source}: {int((~filled).sum())} missing images were zero-filled.", stacklevel=3
        )
    first = frames[int(np.argmin(np.where(slice_of == 0, time_of, np.iinfo(int).max)))]
    echo_times = [f.echo_time for f in frames if f.echo_time]
    return Series(
        data=data,
        affine=_affine(first, slice_values),
        tr=step,
        times=times,
        te=float(np.median(echo_times)) if echo_times else None,
    )


def _normal(frame: _Frame) -> np.ndarray:
    return np.cross(frame.orientation[:3], frame.orientation[3:])


def _slice_positions(frames: list[_Frame], source: str) -> np.ndarray:
    """Each frame's position along the slice normal (mm)."""
    if all(np.isfinite(f.position).all() for f in frames):
        normal = _normal(frames[0])
        return np.array([f.position @ normal for f in frames])
    if all(f.slice_location is not None for f in frames):
        return np.array([f.slice_location for f in frames])
    raise InputError(f"{source}: the images carry neither ImagePositionPatient nor SliceLocation.")


def _time_indices(
    frames: list[_Frame], slice_of: np.ndarray, tr: float | None, source: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """(time index per frame, time of each index in seconds, TR)."""
    clock = np.array([np.nan if f.acquisition_time is None else f.acquisition_time for f in frames])
    elapsed = None
    if np.isfinite(clock).all():
        first = np.array([clock[slice_of == z].min() for z in range(slice_of.max() + 1)])
        elapsed = (clock - first[slice_of]) % 86400.0  # a series may cross midnight
    if all(f.temporal_index is not None for f in frames):
        _, time_of = np.unique([f.temporal_index for f in frames], return_inverse=True)
    elif elapsed is not None:
        step = _median_step(np.unique(np.round(elapsed, 3)))
        time_of = np.round(elapsed / step).astype(int) if step > 0 else np.zeros(len(frames), int)
    else:
        instance = np.array([f.instance for f in frames])
        time_of = np.empty(len(frames), dtype=int)
        for z in range(slice_of.max() + 1):
            members = np.flatnonzero(slice_of == z)
            time_of[members[np.argsort(instance[members], kind="stable")]] = np.arange(len(members))
    n_t = int(time_of.max()) + 1
    if tr is None and n_t > 1:
        if elapsed is not None:
            tr = float(np.polyfit(time_of, elapsed, 1)[0])
        else:
            tr = next((f.repetition_time for f in frames if f.repetition_time), None)
        if not tr or tr <= 0:
            raise InputError(f"{source}: the images carry no timing; give the TR in seconds.")
    step = float(tr or 0.0)
    return time_of, np.arange(n_t) * step, step


def _median_step(values: np.ndarray) -> float:
    return float(np.median(np.diff(values))) if len(values) > 1 else 0.0


def _affine(first: _Frame, slice_values: np.ndarray) -> np.ndarray:
    """NIfTI affine of the assembled grid; ``first`` lies in the first slice."""
    normal = _normal(first)
    step = _median_step(slice_values) if len(slice_values) > 1 else 1.0
    origin = first.position if np.isfinite(first.position).all() else normal * slice_values[0]
    return dicom_affine(first.orientation, origin, first.spacing, step)


def dicom_affine(
    orientation: np.ndarray, position: np.ndarray, pixel_spacing: tuple[float, float], step: float
) -> np.ndarray:
    """NIfTI (RAS) affine of a (column, row, slice) grid from DICOM geometry.

    ``orientation``: ImageOrientationPatient; ``position``: ImagePositionPatient of the first
    slice; ``pixel_spacing``: (between rows, between columns); ``step``: signed distance between
    consecutive slices along the normal (row direction × column direction).
    """
    orientation = np.asarray(orientation, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    lps = np.eye(4)
    lps[:3, 0] = row_dir * pixel_spacing[1]  # along a row: the column index grows
    lps[:3, 1] = col_dir * pixel_spacing[0]
    lps[:3, 2] = np.cross(row_dir, col_dir) * step
    lps[:3, 3] = position
    return LPS_TO_RAS @ lps
