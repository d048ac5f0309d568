"""The RSNA Intracranial Hemorrhage Detection data in its real on-disk layout.

``stage_2_train.csv`` holds ``ID,Label`` rows such as ``ID_12cadc6af_epidural,0``: six rows per
image (five subtypes and ``any``), some of them duplicated in the released file.
``stage_2_train/ID_12cadc6af.dcm`` is the slice; a re-upload that windowed each slice to a PNG
(``ID_12cadc6af.png``, brain window) is read the same way, through the haemorrhage task's reader.
The phantom writer produces the same layout, so this one loader serves all three. Splits are
multi-label stratified with ``iterative-stratification`` (as the study did), by image or, to keep
a patient's slices together, by patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import torch
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from torch.utils.data import Dataset
from torchvision.transforms import v2

from workbench.ct import read_ct
from workbench.errors import InputError
from workbench.transforms.ct import CTPreprocess, normalise, window_tensor

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS = ("any", *SUBTYPES)
CSV_NAME = "stage_2_train.csv"
IMAGE_DIR = "stage_2_train"


# The slice files a layout may hold: the challenge's DICOMs, or windowed pictures of them.
SLICE_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")


def slice_files(root: Path) -> dict[str, Path]:
    """``ID_<image>`` → its file under ``stage_2_train/`` (DICOM preferred when both exist)."""
    found: dict[str, Path] = {}
    for path in sorted((Path(root) / IMAGE_DIR).glob("ID_*")):
        suffix = path.suffix.lower()
        if suffix in SLICE_SUFFIXES and (path.stem not in found or suffix == SLICE_SUFFIXES[0]):
            found[path.stem] = path
    return found


def read_labels(csv_path: Path) -> pd.DataFrame:
    """One row per image (index ``ID_<image>``), one 0/1 column per label in :data:`LABELS`."""
    try:
        rows = pd.read_csv(csv_path, dtype={"ID": str, "Label": "Int64"})
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(
            f"{csv_path}: not a readable ID,Label CSV ({type(err).__name__})."
        ) from None
    if list(rows.columns[:2]) != ["ID", "Label"]:
        raise InputError(f"{csv_path}: expected the columns ID,Label as in {CSV_NAME}.")
    rows = rows.drop_duplicates(subset="ID")
    parts = rows["ID"].str.rsplit("_", n=1, expand=True)
    rows = rows.assign(image=parts[0], label=parts[1])
    unknown = sorted(set(rows["label"]) - set(LABELS))
    if unknown:
        raise InputError(f"{csv_path}: unknown label(s) {unknown}; expected {list(LABELS)}.")
    table = rows.pivot(index="image", columns="label", values="Label").reindex(columns=LABELS)
    incomplete = int(table.isna().any(axis=1).sum())
    if incomplete:
        raise InputError(
            f"{csv_path}: {incomplete} image(s) lack one of the six label rows; "
            "the file is incomplete."
        )
    return table.astype(np.int8).sort_index()


@dataclass
class RSNAIndex:
    """The labelled images found on disk, in a fixed order."""

    root: Path
    ids: list[str]
    targets: np.ndarray  # (N, 6) int8 in LABELS order
    paths: list[Path]

    def subset(self, idx: Sequence[int]) -> RSNAIndex:
        idx = np.asarray(idx, dtype=int)
        return RSNAIndex(
            self.root, [self.ids[i] for i in idx], self.targets[idx], [self.paths[i] for i in idx]
        )


def scan_rsna(root: Path, max_images: int = 0, seed: int = 0) -> RSNAIndex:
    """Labels of the images under ``root`` whose slice file exists (a partial download works);
    ``max_images`` keeps a random sample for quick runs."""
    root = Path(root)
    csv = root / CSV_NAME
    if not csv.is_file() or not (root / IMAGE_DIR).is_dir():
        raise InputError(f"{root}: expected {CSV_NAME} and {IMAGE_DIR}/ (the RSNA layout).")
    table = read_labels(csv)
    on_disk = slice_files(root)
    table = table[table.index.isin(on_disk.keys())]
    if table.empty:
        raise InputError(f"{root}: none of the images in {CSV_NAME} is in {IMAGE_DIR}/.")
    if max_images and len(table) > max_images:
        table = table.sample(n=max_images, random_state=seed).sort_index()
    ids = list(table.index)
    return RSNAIndex(root, ids, table.to_numpy(np.int8), [on_disk[i] for i in ids])


def patient_ids(paths: Sequence[Path]) -> np.ndarray:
    """PatientID of each file (header only), used solely to group slices; never shown."""
    return np.array(
        [
            str(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["PatientID"]).PatientID)
            for p in paths
        ]
    )


def stratified_split(
    targets: np.ndarray, fraction: float, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held-out) indices with every label's prevalence about equal on both sides.

    With ``groups`` (e.g. patient IDs) whole groups move together: each group is stratified by
    the union of its slices' labels.
    """
    if groups is None:
        split = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(split.split(np.zeros(len(targets)), targets))
    names, inverse = np.unique(groups, return_inverse=True)
    per_group = np.zeros((len(names), targets.shape[1]), dtype=targets.dtype)
    np.maximum.at(per_group, inverse, targets)
    keep, held = stratified_split(per_group, fraction, seed)
    return np.flatnonzero(np.isin(inverse, keep)), np.flatnonzero(np.isin(inverse, held))


def resample(
    targets: np.ndarray,
    epidural_factor: int = 1,
    negative_fraction: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Training indices with epidural slices repeated ``epidural_factor`` times (×8 in the
    study: the rarest subtype) and a random ``negative_fraction`` of the negatives kept."""
    rng = np.random.default_rng(seed)
    any_col, epi_col = LABELS.index("any"), LABELS.index("epidural")
    negatives = np.flatnonzero(targets[:, any_col] == 0)
    positives = np.flatnonzero(targets[:, any_col] == 1)
    kept = rng.choice(negatives, size=round(len(negatives) * negative_fraction), replace=False)
    epidural = np.flatnonzero(targets[:, epi_col] == 1)
    extra = np.repeat(epidural, max(epidural_factor - 1, 0))
    return np.sort(np.concatenate([positives, np.sort(kept), extra]))


class WindowJitter:
    """Move the window level and width a little (by a share of the width): sites and exports
    window slightly differently, and a PNG's window was chosen by whoever saved it. Acts on
    windows already in [0, 1], so what the window had clipped stays clipped."""

    def __init__(self, shift: float = 0.06, scale: float = 0.1, p: float = 0.5) -> None:
        self.shift, self.scale, self.p = shift, scale, p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        factor = 1 + self.scale * (2 * float(torch.rand(())) - 1)
        offset = self.shift * (2 * float(torch.rand(())) - 1)
        return ((x - 0.5) * factor + 0.5 + offset).clamp(0, 1)


class RandomRot90:
    """A quarter turn either way: CT exports are not always in radiological orientation."""

    def __init__(self, p: float = 0.15) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return x
        return torch.rot90(x, 1 if torch.rand(()) < 0.5 else -1, dims=(-2, -1))


def ct_augment() -> v2.Compose:
    """Head position (flips, small affine, the odd quarter turn) and what scanners and exports
    vary (window, noise). The affine fills with 0: air in every window."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1)),
            RandomRot90(),
            WindowJitter(),
            v2.RandomApply([v2.GaussianNoise(sigma=0.02)], p=0.3),
        ]
    )


class RSNASlices(Dataset):
    """Windowed slices and their six targets. Read from disk on demand (the real set is 750k
    files; a worker pool reads in parallel), or once into memory with ``cache`` (small sets:
    the windows at model size, in float16)."""

    def __init__(
        self,
        paths: Sequence[Path],
        targets: np.ndarray,
        prep: CTPreprocess,
        augment: bool = False,
        cache: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        self.prep = prep
        self.augment = ct_augment() if augment else None
        self.cached = [self._windows(i).half() for i in range(len(self.paths))] if cache else None

    def _windows(self, i: int) -> torch.Tensor:
        return window_tensor(read_ct(self.paths[i]).pixels, self.prep)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.cached[i] if self.cached is not None else self._windows(i)
        return normalise(x, self.prep, self.augment), self.targets[i]
