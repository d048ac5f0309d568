"""A CT slice in Hounsfield units → the haemorrhage model's input tensor.

Windows (:mod:`workbench.ct`) stacked as channels, resized, then ImageNet-normalised; training
(:mod:`workbench.data.rsna`) and uploads (:mod:`workbench.tasks.hemorrhage`) both go through
:func:`ct_tensor`, so the app feeds the model what it trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.ct import DEFAULT_CHANNELS, PICTURE_WINDOW, get_window, window_stack
from workbench.errors import InputError
from workbench.transforms.mr import IMAGENET_MEAN, IMAGENET_STD

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CTPreprocess:
    """How a model is fed, stored in ``config.json`` under ``preprocess``."""

    size: tuple[int, int] = (256, 256)
    windows: tuple[str, ...] = DEFAULT_CHANNELS  # names in workbench.ct.WINDOWS, one per channel
    imagenet_norm: bool = True

    def __post_init__(self) -> None:
        for name in self.windows:
            get_window(name)  # an unknown name fails here, before any file is read

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CTPreprocess:
        return cls(
            size=tuple(d.get("size", (256, 256))),
            windows=tuple(d.get("windows", DEFAULT_CHANNELS)),
            imagenet_norm=bool(d.get("imagenet_norm", True)),
        )


def window_tensor(hu: np.ndarray, prep: CTPreprocess) -> torch.Tensor:
    """(H, W) HU → (C, H, W) windows in [0, 1] at ``prep.size`` (what a data cache keeps)."""
    x = torch.from_numpy(np.ascontiguousarray(window_stack(hu, prep.windows).transpose(2, 0, 1)))
    return F.interpolate(x[None], size=prep.size, mode="bilinear", antialias=True)[0]


def normalise(
    x: torch.Tensor, prep: CTPreprocess, augment: Transform | None = None
) -> torch.Tensor:
    """Windows in [0, 1] → the model's input. ``augment`` (training only) acts before the
    normalisation, so that what an affine transform fills in is 0: air in every window."""
    x = x.float()
    if augment is not None:
        x = augment(x)
    if prep.imagenet_norm:
        x = (x - _norm(IMAGENET_MEAN, len(x))) / _norm(IMAGENET_STD, len(x))
    return x


def ct_tensor(hu: np.ndarray, prep: CTPreprocess) -> torch.Tensor:
    """(H, W) HU → (C, H, W) model input; the same for training and use."""
    return normalise(window_tensor(hu, prep), prep)


def _norm(values: tuple[float, ...], channels: int) -> torch.Tensor:
    """ImageNet's per-channel constants for 3 windows, their mean for any other count."""
    per_channel = values if channels == 3 else (sum(values) / 3,) * channels
    return torch.tensor(per_channel).view(-1, 1, 1)


def check_picture_windows(prep: CTPreprocess) -> None:
    """A picture holds only the brain window: a model fed other windows needs the DICOM."""
    if any(w != PICTURE_WINDOW for w in prep.windows):
        raise InputError(
            f"this model reads the {', '.join(prep.windows)} windows from Hounsfield units, which "
            "a PNG/JPEG slice does not hold; give the DICOM files."
        )
