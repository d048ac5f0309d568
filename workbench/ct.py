"""CT intensities: Hounsfield units, the RSNA wrap-around fix, and display windows.

A CT slice arrives from :mod:`workbench.io` already in HU (stored value × RescaleSlope +
RescaleIntercept). Two things remain that are specific to CT and shared by the haemorrhage
loader, task and tab:

* some RSNA Intracranial Hemorrhage files store 12-bit unsigned values with an intercept near
  zero instead of −1024, so air wraps round to +3096 "HU"; the competition's known fix
  (:func:`fix_rsna_wrap`) undoes it;
* windows (level/width in HU) map the HU range a reader cares about onto [0, 1]; the study fed
  three of them to the network as the three colour channels.

:func:`read_ct` reads a slice for all of them: a DICOM into HU, a brain-window picture back to
the HU it shows. numpy only: like :mod:`workbench.io`, this module never imports torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import InputError

if TYPE_CHECKING:
    from workbench.io import Image


@dataclass(frozen=True)
class Window:
    """A display window: ``level`` (centre) and ``width`` in HU."""

    level: float
    width: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


# The study's three channels plus the bone window a reader checks for fractures.
WINDOWS: dict[str, Window] = {
    "brain": Window(40, 80),
    "subdural": Window(80, 200),
    "soft_tissue": Window(40, 380),
    "bone": Window(600, 2800),
}
DEFAULT_CHANNELS: tuple[str, ...] = ("brain", "subdural", "soft_tissue")


def get_window(name: str) -> Window:
    """A named window; an unknown name is the user's mistake."""
    if name not in WINDOWS:
        raise InputError(f"unknown CT window '{name}'; choose from: {', '.join(WINDOWS)}.")
    return WINDOWS[name]


def apply_window(hu: np.ndarray, window: Window) -> np.ndarray:
    """HU → [0, 1] linearly between ``level ∓ width/2``, clipped outside.

    This is the min/max form the RSNA kernels and the study used, not DICOM's VOI LUT formula
    (which shifts by half a grey level); the network must see what it was trained on.
    """
    out = (np.asarray(hu, dtype=np.float32) - window.low) / window.width
    return np.clip(out, 0.0, 1.0)


def window_stack(hu: np.ndarray, names: Sequence[str] = DEFAULT_CHANNELS) -> np.ndarray:
    """(H, W) HU → (H, W, len(names)) float32, one window per channel."""
    return np.stack([apply_window(hu, get_window(n)) for n in names], axis=-1)


# The wrap-around affects 12-bit unsigned files whose intercept is above this value.
RSNA_WRAP_INTERCEPT = -100.0
_WRAP_SHIFT = 1000
_WRAP_MODULUS = 4096  # 2**12


def needs_rsna_fix(header: Mapping[str, object]) -> bool:
    """Whether a de-identified DICOM header describes one of the RSNA files whose values wrap:
    12 stored bits, unsigned, RescaleIntercept > −100."""
    try:
        return (
            int(header.get("BitsStored", 0)) == 12
            and int(header.get("PixelRepresentation", 1)) == 0
            and float(header.get("RescaleIntercept", RSNA_WRAP_INTERCEPT)) > RSNA_WRAP_INTERCEPT
        )
    except (TypeError, ValueError):
        return False


def fix_rsna_wrap(hu: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Undo the wrap-around of the affected RSNA files, on values already rescaled to "HU".

    The competition's fix works on stored values: ``x = stored + 1000``, values ≥ 4096 lose
    4096, and the intercept becomes −1000. Here the stored value is first recovered from
    ``hu = stored × slope + intercept``.
    """
    stored = np.rint((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    shifted = stored + _WRAP_SHIFT
    shifted[shifted >= _WRAP_MODULUS] -= _WRAP_MODULUS
    return (shifted * slope - _WRAP_SHIFT).astype(np.float32)


def hounsfield(pixels: np.ndarray, header: Mapping[str, object]) -> np.ndarray:
    """HU of a CT slice read by :mod:`workbench.io`, with the RSNA fix where the header needs it."""
    if not needs_rsna_fix(header):
        return np.asarray(pixels, dtype=np.float32)
    slope = float(header.get("RescaleSlope", 1.0))
    intercept = float(header["RescaleIntercept"])
    return fix_rsna_wrap(pixels, slope, intercept)


# A grey picture's channels may differ this much (share of full scale) from JPEG colour noise.
GREY_TOLERANCE = 0.02
PICTURE_WINDOW = "brain"  # the window CT pictures are shared in (and the RSNA PNGs were made in)


def picture_to_hu(
    pixels: np.ndarray, full_scale: float, window: str = PICTURE_WINDOW
) -> np.ndarray:
    """A windowed CT picture (black = ``low`` HU, white = ``high`` HU) mapped back to the HU
    range it shows, so that windowing it again gives the picture back: a PNG slice and the DICOM
    it came from then reach a brain-window model the same way. Outside the window nothing is
    known, so only a model fed that one window can read pictures."""
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        if np.ptp(x, axis=-1).max() > GREY_TOLERANCE * full_scale:
            raise InputError(
                "a colour picture is not a CT slice; give a grey head-CT image (brain window) "
                "or the DICOM file."
            )
        x = x.mean(axis=-1)
    w = get_window(window)
    return (w.low + np.clip(x / full_scale, 0.0, 1.0) * w.width).astype(np.float32)


# --- reading a slice -------------------------------------------------------------------------

POSITION = "ImagePositionPatient"
PICTURE = "CTPicture"  # header key marking a slice read from a windowed picture


def _position(header: dict) -> list[float] | None:
    """ImagePositionPatient (mm) when the header holds three finite numbers."""
    values = header.get(POSITION)
    if not isinstance(values, list) or len(values) != 3:
        return None
    return [float(v) for v in values] if all(map(math.isfinite, values)) else None


def read_ct(path: Path) -> Image:
    """A CT slice in HU (RSNA wrap fixed), with its position in the header when known; a grey
    picture is taken as a brain-window slice and mapped back to HU."""
    from workbench.io import load_image  # pydicom and nibabel: on use, not at registration

    return as_ct(load_image(path))


def as_ct(image: Image) -> Image:
    """A loaded image as a CT slice in HU (see :func:`read_ct`); InputError when it is not one."""
    from workbench.io.images import PHOTO

    if image.modality == PHOTO and image.pixels.ndim in (2, 3):
        full_scale = 65535.0 if image.header.get("StoredDataType") == "uint16" else 255.0
        try:
            hu = picture_to_hu(image.pixels, full_scale)
        except InputError as err:
            raise InputError(f"{image.source}: {err}") from None
        header = {**image.header, PICTURE: f"{PICTURE_WINDOW} window"}
        return dataclasses.replace(image, pixels=hu, modality="CT", header=header)
    if image.modality != "CT" or image.pixels.ndim != 2:
        raise InputError(
            f"{image.source}: not a CT slice (modality {image.modality}); the haemorrhage model "
            "needs a head CT DICOM file in Hounsfield units or a brain-window PNG/JPEG slice."
        )
    header = {k: v for k, v in image.header.items() if k != POSITION}
    position = _position(image.header)
    if position is not None:
        header[POSITION] = position
    return dataclasses.replace(image, pixels=hounsfield(image.pixels, image.header), header=header)


def is_picture(image: Image) -> bool:
    return PICTURE in image.header


def slice_z(image: Image) -> float | None:
    position = image.header.get(POSITION)
    return float(position[2]) if position else None
