"""The LGG segmentation dataset (Buda et al., Kaggle ``kaggle_3m``) in its real on-disk layout.

``kaggle_3m/<TCGA_XX_XXXX_YYYYMMDD>/<same>_<slice>.tif`` holds a 3-channel slice (pre-contrast,
FLAIR, post-contrast) and ``<same>_<slice>_mask.tif`` its mask. The phantom generator writes the
same layout, so this one loader serves real and synthetic data. Splits are always by patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GroupKFold, GroupShuffleSplit
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from workbench.errors import InputError
from workbench.io import load_image
from workbench.io.layouts import FLAIR_CHANNEL, KAGGLE_SLICE
from workbench.transforms.mr import Preprocess, to_tensor


@dataclass(frozen=True)
class SliceRecord:
    patient: str
    index: int
    image: Path
    mask: Path


def scan_kaggle_3m(root: Path) -> list[SliceRecord]:
    """Every (slice, mask) pair under ``root`` (the folder holding the patient folders, or its
    parent), ordered by patient then slice position."""
    root = Path(root)
    if (root / "kaggle_3m").is_dir():
        root = root / "kaggle_3m"
    records = []
    for image in root.glob("*/*.tif*"):
        match = KAGGLE_SLICE.match(image.name)
        if match is None or image.stem.endswith("_mask"):
            continue
        mask = image.with_name(f"{image.stem}_mask{image.suffix}")
        if mask.is_file():
            records.append(SliceRecord(image.parent.name, int(match["index"]), image, mask))
    if not records:
        raise InputError(
            f"no kaggle_3m slices (<patient>/<patient>_<n>.tif with _mask.tif) under {root}."
        )
    return sorted(records, key=lambda r: (r.patient, r.index))


def patients(records: Sequence[SliceRecord]) -> list[str]:
    return sorted({r.patient for r in records})


def patient_folds(records: Sequence[SliceRecord], folds: int, seed: int = 0):
    """(train, test) record-index arrays per fold; a patient's slices never straddle a split.

    ``folds == 1`` gives one split holding out about a fifth of the patients.
    """
    groups = np.array([r.patient for r in records])
    index = np.arange(len(records))
    if folds == 1:
        yield from GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=seed).split(
            index, groups=groups
        )
    else:
        yield from GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            index, groups=groups
        )


def split_by_patient(records: Sequence[SliceRecord], idx: np.ndarray, fraction: float, seed: int):
    """Split ``idx`` into two index arrays by patient (e.g. train / early-stopping validation)."""
    groups = np.array([records[i].patient for i in idx])
    a, b = next(
        GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(
            idx, groups=groups
        )
    )
    return idx[a], idx[b]


def read_mask(path: Path) -> np.ndarray:
    pixels = load_image(path).pixels
    if pixels.ndim == 3:
        pixels = pixels.max(axis=-1)
    return pixels > pixels.max() / 2 if pixels.max() > 0 else np.zeros(pixels.shape, bool)


class ChannelDrop:
    """Sometimes show the model its FLAIR copied to every channel, so that a single grey FLAIR
    slice (a PNG or one DICOM series) is in distribution at inference.

    FLAIR only: the masks outline the FLAIR abnormality, which pre- and post-contrast T1 often
    do not show, so a T1 copied to every channel would ask for an outline the input lacks.
    """

    def __init__(self, p: float = 0.2, channel: int = FLAIR_CHANNEL) -> None:
        self.p, self.channel = p, channel

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        return x[self.channel : self.channel + 1].expand_as(x).clone()


class RandomGamma:
    """Raise [0, 1] intensities to a random power: scanners and exports differ in their tone
    curve. torchvision has ``adjust_gamma`` but no random transform around it."""

    def __init__(self, low: float = 0.7, high: float = 1.5, p: float = 0.5) -> None:
        self.low, self.high, self.p = low, high, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        gamma = self.low + (self.high - self.low) * float(torch.rand(()))
        return v2.functional.adjust_gamma(x, gamma)


class RandomBiasField:
    """Multiply [0, 1] intensities by a smooth random field, as coil sensitivity shades an MR
    image. MONAI's ``RandBiasField`` does this too, but MONAI is not a dependency for one
    transform: here a 3×3 grid of log-gains, bicubically upsampled."""

    def __init__(self, strength: float = 0.3, p: float = 0.5) -> None:
        self.strength, self.p = strength, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        grid = (torch.rand(1, 1, 3, 3) * 2 - 1) * self.strength
        field = torch.nn.functional.interpolate(
            grid, size=x.shape[-2:], mode="bicubic", align_corners=True
        )[0]
        return (x * field.exp()).clamp(0, 1)


def segmentation_augment(rotation: float = 15.0) -> v2.Compose:
    """The study's geometric augmentation: rotation, flips, shift and scale (image and mask)."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(0.2),
            v2.RandomAffine(degrees=rotation, translate=(0.05, 0.05), scale=(0.9, 1.1)),
        ]
    )


def scanner_augment() -> v2.Compose:
    """What differs between scanners and exports, on the image only: the study's brightness and
    contrast, plus gamma, slight blur (lower resolution) and noise."""
    return v2.Compose(
        [
            v2.ColorJitter(brightness=0.2, contrast=0.2),
            RandomGamma(),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.2))], p=0.25),
            v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=0.3),
        ]
    )


class LGGSlices(Dataset):
    """Slices and masks as tensors, read once; :meth:`view` makes split subsets that share them."""

    def __init__(self, records: Sequence[SliceRecord], prep: Preprocess) -> None:
        self.records = list(records)
        self.prep = prep
        self.images = [to_tensor(load_image(r.image).pixels, prep) for r in self.records]
        self.masks = [self._mask(r.mask) for r in self.records]
        self.augment: v2.Compose | None = None
        self.intensity: v2.Compose | None = None
        self.channel_drop: ChannelDrop | None = None

    def _mask(self, path: Path) -> torch.Tensor:
        m = torch.from_numpy(read_mask(path).astype(np.float32))[None, None]
        return torch.nn.functional.interpolate(m, size=self.prep.size, mode="nearest")[0]

    def view(self, indices: Sequence[int], augment: bool = False) -> LGGSlices:
        """The slices at ``indices`` (kept in order), optionally with training augmentation."""
        sub = object.__new__(LGGSlices)
        sub.prep = self.prep
        sub.records = [self.records[i] for i in indices]
        sub.images = [self.images[i] for i in indices]
        sub.masks = [self.masks[i] for i in indices]
        sub.augment = segmentation_augment() if augment else None
        sub.intensity = scanner_augment() if augment else None
        sub.channel_drop = ChannelDrop() if augment else None
        return sub

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, m = self.images[i], self.masks[i]
        if self.augment is not None:
            x, m = self.augment(tv_tensors.Image(x), tv_tensors.Mask(m))
            x = self.channel_drop(self.intensity(x.as_subclass(torch.Tensor)))
            m = m.as_subclass(torch.Tensor)
        return x, m
