"""Image → model tensor, the same for training data and for uploads.

Training and inference share this one function so that what a model sees in the app is what it
saw in training (channel handling, intensity scaling, size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Stored in ``config.json`` under ``preprocess`` so a model folder says how to feed it."""

    size: tuple[int, int] = (256, 256)
    channels: int = 3
    imagenet_norm: bool = False  # ImageNet mean/std after scaling to [0, 1] (pretrained encoders)
    low_pct: float = 0.5  # robust intensity window: percentiles mapped to 0 and 1
    high_pct: float = 99.5
    foreground: bool = False  # percentiles of the head only, not of the whole frame

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        d = dict(d)
        d["size"] = tuple(d.get("size", (256, 256)))
        return cls(**d)


FOREGROUND_LEVEL = 0.05  # of the frame's range above its minimum: air and padding fall below


def scale_intensity(
    pixels: np.ndarray, low_pct: float, high_pct: float, foreground: bool = False
) -> np.ndarray:
    """Map each channel's robust range to [0, 1]: MR has no absolute units, CT/8-bit differ.

    With ``foreground`` the percentiles are taken over the head alone, so a 16-bit scanner frame
    with a wide black border and an 8-bit JPEG cropped to the skull reach the same window.
    """
    x = np.nan_to_num(np.asarray(pixels, dtype=np.float32))
    if x.ndim == 2:
        x = x[..., None]
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        v = x[..., c]
        if foreground:
            low, top = float(v.min()), float(np.percentile(v, 99.9))
            head = v[v > low + FOREGROUND_LEVEL * (top - low)]
            v_stats = head if head.size >= 0.01 * v.size else v
        else:
            v_stats = v
        lo, hi = np.percentile(v_stats, (low_pct, high_pct))
        out[..., c] = (v - lo) / max(hi - lo, 1e-6)
    return np.clip(out, 0.0, 1.0)


def match_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Grey slices are repeated to the model's channels; colour collapses to grey for 1-channel."""
    if x.shape[-1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=-1, keepdims=True)
    return np.repeat(x.mean(axis=-1, keepdims=True), channels, axis=-1)


def to_tensor(pixels: np.ndarray, prep: Preprocess) -> torch.Tensor:
    """(H, W[, C]) pixels in any units → (C, H, W) float tensor at ``prep.size``."""
    x = scale_intensity(pixels, prep.low_pct, prep.high_pct, prep.foreground)
    x = match_channels(x, prep.channels)
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
    t = F.interpolate(
        t[None], size=prep.size, mode="bilinear", antialias=True, align_corners=False
    )[0]
    if prep.imagenet_norm:
        mean = torch.tensor(IMAGENET_MEAN[: prep.channels]).view(-1, 1, 1)
        std = torch.tensor(IMAGENET_STD[: prep.channels]).view(-1, 1, 1)
        t = (t - mean) / std
    return t
