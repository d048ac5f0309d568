"""DSC perfusion patients → network inputs and Tmax targets, as voxel strips or whole volumes.

A dataset is a folder of patient folders, each holding the 4D DSC series (``dsc/`` DICOM folder,
``dsc.zip`` or ``dsc.nii.gz``) and what to learn from: the reference Tmax map of a commercial
package (``tmax/`` or ``tmax.nii.gz``), or, for simulated patients, ``truth_tmax.nii.gz`` and
``tissue_mask.nii.gz`` (what ``python -m workbench phantom perfusion`` writes). The target
``osvd`` needs nothing but the series: the workbench's own deconvolution map.

Inputs are the voxel's ΔR2* curve on a fixed time grid (``frames`` samples every ``step``
seconds, so a frame means the same time in every series), divided by the AIF's peak so the
scale does not depend on the scanner or dose; optionally the AIF itself as more channels: a
voxel's delay is only defined relative to the arterial bolus, which a per-voxel net cannot see
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import interp1d
from torch.utils.data import Dataset

from workbench.errors import InputError
from workbench.io.series import NIFTI_SUFFIXES, Series, load_series
from workbench.perfusion.maps import PerfusionConfig, PerfusionMaps, compute_maps
from workbench.perfusion.signal import bolus_arrival, brain_mask, clean, delta_r2


@dataclass(frozen=True)
class InputSpec:
    """How a series becomes input channels; saved as ``config.json``'s ``preprocess``."""

    frames: int = 40
    step: float = 1.5  # s between resampled frames
    aif_channels: bool = True

    @property
    def channels(self) -> int:
        return self.frames * (2 if self.aif_channels else 1)

    def to_dict(self) -> dict:
        return asdict(self)


def tissue_curves(series: Series, mask: np.ndarray, config: PerfusionConfig) -> np.ndarray:
    """ΔR2* (N, T) of the ``mask`` voxels, with the same cleaning and baseline as the maps."""
    data = clean(series.data, config.max_missing_fraction)
    arrival = bolus_arrival(data[brain_mask(data, config.mask_fraction)].mean(axis=0))
    return delta_r2(data, mask, arrival, series.te or config.te)


def resample(curves: np.ndarray, times: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Curves (N, T) on the series' times → (N, frames) on the fixed grid; the last value is held
    past the end of the acquisition."""
    grid = np.arange(spec.frames) * spec.step
    line = interp1d(
        times, curves, axis=-1, bounds_error=False, fill_value=(curves[..., 0], curves[..., -1])
    )
    return line(grid).astype(np.float32)


def network_inputs(
    series: Series,
    maps: PerfusionMaps,
    spec: InputSpec,
    config: PerfusionConfig | None = None,
) -> np.ndarray:
    """(C, Z, Y, X) float32 input of a series whose maps were computed with ``config``: zero
    outside ``maps.mask``."""
    scale = float(maps.aif.max())
    if scale <= 0:
        raise InputError("the arterial input function is flat; check that the series is DSC.")
    curves = tissue_curves(series, maps.mask, config or PerfusionConfig())
    curves = resample(curves, series.times, spec)
    columns = [curves / scale]
    if spec.aif_channels:
        aif = resample(maps.aif[None], series.times, spec) / scale
        columns.append(np.broadcast_to(aif, curves.shape))
    volume = np.zeros((spec.channels, *maps.mask.shape), np.float32)
    volume[:, maps.mask] = np.concatenate(columns, axis=1).T
    return volume


# ---------------------------------------------------------------- patients on disk


def _find(folder: Path, stem: str) -> Path | None:
    """``stem/`` (DICOM folder), ``stem.zip`` or ``stem.nii(.gz)`` inside ``folder``."""
    for candidate in (stem, f"{stem}.zip", *(stem + s for s in NIFTI_SUFFIXES)):
        if (folder / candidate).exists():
            return folder / candidate
    return None


def scan_patients(root: Path) -> list[Path]:
    """Patient folders under ``root`` (each with a ``dsc`` series), sorted by name."""
    root = Path(root)
    found = (
        sorted(p for p in root.iterdir() if p.is_dir() and _find(p, "dsc")) if root.is_dir() else []
    )
    if not found:
        raise InputError(
            f"no patient folders with a dsc series under {root}; expected <patient>/dsc/ "
            "(DICOM), dsc.zip or dsc.nii.gz (python -m workbench phantom perfusion writes one)."
        )
    return found


def _volume(path: Path | None, what: str, folder: Path) -> np.ndarray:
    if path is None:
        raise InputError(f"{folder.name}: no {what} found; choose another --target.")
    return load_series(path).data[..., 0]


TargetReader = Callable[[Path, PerfusionMaps], np.ndarray]
TARGETS: dict[str, TargetReader] = {
    "reference": lambda folder, maps: _volume(_find(folder, "tmax"), "reference Tmax", folder),
    "osvd": lambda folder, maps: maps.tmax,
    "truth": lambda folder, maps: _volume(_find(folder, "truth_tmax"), "truth_tmax", folder),
}


@dataclass
class Patient:
    """One patient ready for training and scoring, on the series grid (Z, Y, X)."""

    name: str
    inputs: np.ndarray  # (C, Z, Y, X)
    target: np.ndarray  # Tmax to learn, s
    mask: np.ndarray  # where the target is learnt and scored
    osvd: np.ndarray  # the deconvolution's Tmax, to compare against


def load_patient(folder: Path, target: str, spec: InputSpec) -> Patient:
    """Read a patient folder; the mask is the perfused brain, narrowed to grey and white matter
    when the folder has a ``tissue_mask`` (simulated patients: where the truth is defined)."""
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}.")
    series = load_series(_find(folder, "dsc"))
    config = PerfusionConfig(method="osvd", workers=1)
    maps = compute_maps(series, config)
    values = TARGETS[target](folder, maps)
    if values.shape != maps.mask.shape:
        raise InputError(
            f"{folder.name}: the {target} map is {values.shape}, the series {maps.mask.shape}; "
            "they must share one grid."
        )
    mask = maps.mask.copy()
    tissue = _find(folder, "tissue_mask")
    if tissue is not None:
        mask &= load_series(tissue).data[..., 0] > 0
    return Patient(
        name=folder.name,
        inputs=network_inputs(series, maps, spec, config),
        target=values.astype(np.float32),
        mask=mask,
        osvd=maps.tmax,
    )


# ---------------------------------------------------------------- torch datasets
# Targets carry two channels, the Tmax and a weight (1 where scored, 0 elsewhere and in padding),
# so one masked loss serves both layouts.


class VoxelStrips(Dataset):
    """Masked voxels of all patients, shuffled once and cut into strips of ``strip`` voxels.

    A strip is a ``(C, 1, 1, strip)`` volume: for the 1×1×1 nets exactly a batch of voxels, but
    collated per strip, not per voxel (hundreds of thousands of tiny items would make the
    DataLoader the bottleneck).
    """

    def __init__(self, patients: Sequence[Patient], strip: int = 256, seed: int = 0) -> None:
        inputs = np.concatenate([p.inputs[:, p.mask] for p in patients], axis=1)
        target = np.concatenate([p.target[p.mask] for p in patients])
        order = np.random.default_rng(seed).permutation(len(target))
        count = -(-len(order) // strip)
        pad = count * strip - len(order)
        x = np.pad(inputs[:, order], ((0, 0), (0, pad)))
        y = np.stack([np.pad(target[order], (0, pad)), np.pad(np.ones(len(order)), (0, pad))])
        self.x = torch.from_numpy(x.reshape(len(x), 1, count, strip).transpose(2, 0, 1, 3).copy())
        self.y = torch.from_numpy(y.reshape(2, 1, count, strip).transpose(2, 0, 1, 3).copy())
        self.x, self.y = self.x[:, :, :, None], self.y[:, :, :, None].float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class Volumes(Dataset):
    """Whole patient volumes ``(C, Z, Y, X)``, zero-padded to one shape so they batch.

    ``flip``: mirror left-right at random, the one augmentation that keeps the physics (and the
    only cheap way to give a U-Net trained on a dozen volumes more than a dozen views).
    """

    def __init__(self, patients: Sequence[Patient], flip: bool = False) -> None:
        shape = np.max([p.mask.shape for p in patients], axis=0)
        self.items = [
            (_pad(p.inputs, shape), _pad(np.stack([p.target, p.mask]), shape)) for p in patients
        ]
        self.flip = flip

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (torch.from_numpy(a) for a in self.items[index])
        if self.flip and torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        return x, y


def _pad(array: np.ndarray, shape: np.ndarray) -> np.ndarray:
    widths = [(0, 0)] + [(0, int(n - m)) for n, m in zip(shape, array.shape[1:], strict=True)]
    return np.pad(array.astype(np.float32), widths)


# layout name -> (patients, training?) -> dataset
LAYOUTS: dict[str, Callable[[Sequence[Patient], bool], Dataset]] = {
    "voxels": lambda patients, training: VoxelStrips(patients),
    "volumes": lambda patients, training: Volumes(patients, flip=training),
}
