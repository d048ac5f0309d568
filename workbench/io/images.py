"""The :class:`Image` every reader returns, and the reader for ordinary picture files.

PNG, JPEG, TIFF, WEBP, BMP and GIF go through Pillow. Pixel values keep their stored range
(0-255 for 8 bit, 0-65535 for 16 bit), so a 16-bit PNG is not squashed to 8 bits. Colour stays
as three channels as stored: the LGG ``kaggle_3m`` tifs hold pre-contrast, FLAIR and
post-contrast in R, G and B, and deciding what a channel means is the task's job, not the
reader's. Transparency is composited on black (``value * alpha / max``): in a scan, black is
background, so a transparent pixel becomes background instead of keeping a hidden value.
Pictures larger than ``Limits.max_working_side`` are box-averaged down to it as they are decoded
(the models read 224-256 px), which bounds the memory a request needs.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import PIL.Image
import PIL.ImageOps

from workbench.errors import InputError
from workbench.io.limits import DEFAULT_LIMITS, Limits, check_image_size


@dataclass(frozen=True)
class Image:
    """One decoded image: float32 pixels plus what is known about them, free of identifiers."""

    pixels: np.ndarray  # float32 (H, W) or (H, W, 3); (F, H, W[, 3]) when all frames asked
    spacing: tuple[float, float] | None  # mm per pixel (row, col); None when unknown
    modality: str  # DICOM Modality ("MR", "CT", ...) or "photo"
    header: dict[str, object]  # de-identified technical summary, JSON-able
    source: str  # file name only, never the directory
    frames: int = 1  # frames stored in the file (multi-frame DICOM, multi-page TIFF)


PHOTO = "photo"
NOT_AN_IMAGE = (
    "not an image format this workbench reads (PNG, JPEG, TIFF, WEBP, BMP, DICOM, NIfTI); "
    "convert it to PNG or DICOM."
)

# Pillow mode -> how to reach a mode whose numpy view is (H, W) or (H, W, 3 or 4).
# Modes not listed (1, L, I, F, I;16*, RGB, RGBA) convert to numpy directly.
_CONVERT: dict[str, str] = {
    "P": "RGBA",  # palette: colours, possibly with transparency
    "PA": "RGBA",
    "LA": "LA",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}


def _drop_alpha(arr: np.ndarray, full_scale: float) -> np.ndarray:
    """Composite an (H, W, 2|4) array with alpha on black; an opaque alpha changes nothing."""
    colour, alpha = arr[..., :-1], arr[..., -1:]
    out = colour if np.all(alpha == full_scale) else colour * (alpha / full_scale)
    return out[..., 0] if out.shape[-1] == 1 else out


def _frame_to_array(frame: PIL.Image.Image, source: str) -> np.ndarray:
    """One Pillow frame as float32 (H, W) or (H, W, 3)."""
    mode = frame.mode
    if mode in _CONVERT:
        frame = frame.convert(_CONVERT[mode])
    arr = np.asarray(frame)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        full_scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
        arr = _drop_alpha(arr.astype(np.float32), full_scale)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise InputError(
            f"{source}: images with pixel layout '{mode}' are not supported; "
            "save it as a greyscale or RGB PNG."
        )
    return arr.astype(np.float32)


# Modes Image.reduce cannot average -> the mode that keeps their values.
_REDUCIBLE = {"1": "L", "P": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}


def _downscaled(frame: PIL.Image.Image, max_side: int) -> PIL.Image.Image:
    """Box-average a large picture to at most ``max_side`` pixels a side while it is still
    compact: the models read 224-256 px, and float copies of an 8192x8192 picture and of
    everything computed from it cost gigabytes per request."""
    factor = math.ceil(max(frame.size) / max_side)
    if factor <= 1:
        return frame
    if frame.mode in _REDUCIBLE:
        frame = frame.convert(_REDUCIBLE[frame.mode])
    return frame.reduce(factor)


def _frames(im: PIL.Image.Image, all_frames: bool, max_side: int) -> tuple[list[np.ndarray], int]:
    """The frames to decode (the middle one, or all), downscaled, and how many the file holds."""
    n = getattr(im, "n_frames", 1)
    indices = range(n) if all_frames else [n // 2]
    im.draft(None, (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale
    out = []
    for i in indices:
        im.seek(i)
        out.append(PIL.ImageOps.exif_transpose(_downscaled(im, max_side)))
    return out, n


def read_picture(
    data: bytes, source: str, *, all_frames: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Image:
    """Decode PNG/JPEG/TIFF/WEBP/BMP/GIF bytes into an :class:`Image` (modality ``photo``)."""
    with _pillow_errors(source):
        im = PIL.Image.open(io.BytesIO(data))
        cols, rows = im.size
        n = getattr(im, "n_frames", 1)
        check_image_size(rows, cols, source, limits, frames=n if all_frames else 1)
        stored_mode, fmt = im.mode, im.format or "image"
        frames, n = _frames(im, all_frames, limits.max_working_side)
        arrays = [_frame_to_array(f, source) for f in frames]
    if len({a.shape for a in arrays}) > 1:
        raise InputError(
            f"{source}: the pages of this file differ in size or colour; save each page separately."
        )
    pixels = np.stack(arrays) if all_frames else arrays[0]
    if not np.isfinite(pixels).all():
        raise InputError(
            f"{source}: the image contains NaN or infinite pixel values; "
            "replace them (for example with 0) and save it again."
        )
    header = {"Format": fmt, "Mode": stored_mode, "StoredDataType": _stored_dtype(stored_mode)}
    if max(rows, cols) > limits.max_working_side:
        header["DownscaledFrom"] = [rows, cols]
    return Image(pixels, None, PHOTO, header, source, frames=n)


def _stored_dtype(mode: str) -> str:
    """The numpy dtype of one stored sample for a Pillow mode (for ``inspect``)."""
    if mode.startswith("I;16"):
        return "uint16"
    return {"1": "bool", "I": "int32", "F": "float32"}.get(mode, "uint8")


@contextmanager
def _pillow_errors(source: str) -> Iterator[None]:
    """Turn whatever Pillow raises on a bad file into one InputError.

    Pillow reports a broken file through many exception types (OSError, SyntaxError,
    ValueError, struct.error, DecompressionBombError...), so anything but InputError is caught;
    the message never quotes the library's text, which may quote file content.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF" etc.: stderr is not for the user
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            yield
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{source}: {_pillow_message(exc)}") from None


def _pillow_message(exc: Exception) -> str:
    if isinstance(exc, PIL.UnidentifiedImageError):
        return NOT_AN_IMAGE
    if isinstance(exc, (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning)):
        return "the image is too large to decode safely; downsample it."
    if isinstance(exc, MemoryError):
        return "the image is too large to decode in memory; downsample it."
    return "the image file is damaged or truncated and cannot be decoded; save it again."
