"""Folder-per-class image datasets (the Kaggle layouts), decoded once and cached as uint8.

A dataset is ``root/<class folder>/<image>``. A *label map* (a registry entry) says which class a
folder name stands for, so the 44-class data trains the contrast model through its folder suffix
and a site's own folders train the same script unchanged. The LGG ``kaggle_3m`` layout (slices
with masks) is read too, labelled by whether the mask is empty.

Images are decoded and resized once into a uint8 tensor in memory and augmented as tensors:
decoding JPEGs every epoch would cost the two CPU cores more than the training step itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold
from torch.utils.data import Dataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from workbench.data.lgg import RandomBiasField, read_mask, scan_kaggle_3m, scanner_augment
from workbench.errors import InputError
from workbench.io import Image, load_image
from workbench.io.layouts import FLAIR_CHANNEL, KAGGLE_3M_SEQUENCES
from workbench.transforms.mr import IMAGENET_MEAN, IMAGENET_STD, Preprocess, to_tensor

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".dcm"})

# The 44-class dataset's folders are "<tumour type> <contrast>" ("Astrocitoma T1C+", "_NORMAL T2").
CONTRASTS_44 = ("T1", "T1C+", "T2")
NORMAL_44 = "_NORMAL"


def split_44_label(folder: str) -> tuple[str, str | None]:
    """``"Astrocitoma T1C+"`` → ``("Astrocitoma", "T1C+")``; a name without a known contrast
    suffix keeps its whole name as type and ``None`` as contrast."""
    head, _, tail = folder.rpartition(" ")
    return (head, tail) if head and tail in CONTRASTS_44 else (folder, None)


def tumour_type_of(folder: str) -> str:
    """Tumour type of a 44-class folder name; the dataset's ``_NORMAL`` reads ``normal``."""
    kind = split_44_label(folder)[0]
    return "normal" if kind == NORMAL_44 else kind


@dataclass(frozen=True)
class LabelMap:
    """How a dataset's layout names classes.

    ``folder`` maps a class folder's name to its label (raising ``InputError`` for a folder it does
    not know). The LGG ``kaggle_3m`` layout is read two ways: ``mask`` gives the (empty,
    non-empty) labels of its slices for detection, and ``sequences`` names its three channels
    (pre-contrast T1, FLAIR, post-contrast T1), each then a grey image of that contrast.
    """

    folder: Callable[[str], str]
    mask: tuple[str, str] | None = None
    mask_channels: tuple[int, ...] = ()  # with ``mask``: these channels also as grey images
    # with ``mask``: these channels as grey images of tumour-free slices only. The mask outlines
    # the FLAIR abnormality, which a T1 may not show, so only its "no tumour" label is certain.
    normal_channels: tuple[int, ...] = ()
    sequences: tuple[str, ...] = ()  # kaggle_3m channels as labelled grey images (contrast)


def _contrast(folder: str) -> str:
    """44-class names give their suffix (T1 / T1C+ / T2); a site's own folders ("T1 pre",
    "T1 post", "T2 FLAIR post") are classes as they are."""
    return split_44_label(folder)[1] or folder


TUMOR_FOLDERS = {
    "glioma": "tumor",
    "meningioma": "tumor",
    "pituitary": "tumor",
    "tumor": "tumor",
    "notumor": "no_tumor",
    "no_tumor": "no_tumor",
}


def _tumor(folder: str) -> str:
    """Detection folders as named above, or the 44-class dataset's (``_NORMAL T2`` is no tumour,
    every other type a lesion to flag), so that dataset can join detection training."""
    if folder.lower() in TUMOR_FOLDERS:
        return TUMOR_FOLDERS[folder.lower()]
    if split_44_label(folder)[1]:
        return "no_tumor" if tumour_type_of(folder) == "normal" else "tumor"
    raise InputError(
        f"class folder {folder!r} is not a tumour-detection class; name folders "
        f"{', '.join(sorted(TUMOR_FOLDERS))} or '<type> T1|T1C+|T2' as in the 44-class data."
    )


LABEL_MAPS: dict[str, LabelMap] = {
    "folder": LabelMap(folder=lambda name: name),
    "contrast": LabelMap(folder=_contrast, sequences=KAGGLE_3M_SEQUENCES),
    # the composite as the study trained on it, and its FLAIR alone: a user's one-series DICOM;
    # tumour-free T1s too, which the ensemble had called tumour (a normal scanner T1 came out
    # ``tumor`` at 0.99; a quarter of held-out LGG tumour-free T1 slices did, half of T1 post)
    "tumor_detect": LabelMap(
        folder=_tumor,
        mask=("no_tumor", "tumor"),
        mask_channels=(FLAIR_CHANNEL,),
        normal_channels=tuple(c for c in range(3) if c != FLAIR_CHANNEL),
    ),
}


def get_label_map(name: str) -> LabelMap:
    if name not in LABEL_MAPS:
        raise InputError(f"unknown label map {name!r}; use one of {sorted(LABEL_MAPS)}.")
    return LABEL_MAPS[name]


@dataclass(frozen=True)
class Sample:
    """One image file, its class, and the group it must share a split with ("" if none)."""

    path: Path
    label: str
    group: str = ""
    channel: int = -1  # >= 0: only this channel of a colour file, as a grey image
    source: str = ""  # the dataset folder it came from (cards report per source)


def _is_kaggle_3m(root: Path) -> bool:
    return (root / "kaggle_3m").is_dir() or any(root.glob("*/*_mask.tif"))


def scan_class_folders(root: Path, label_map: LabelMap) -> list[Sample]:
    """Every image under ``root/<class>/`` (any depth), in a stable order."""
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = label_map.folder(folder.name)
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        samples += [Sample(p, label) for p in files]
    return samples


def scan_kaggle_3m_labels(
    root: Path,
    labels: tuple[str, str],
    channels: Sequence[int] = (),
    normal_channels: Sequence[int] = (),
) -> list[Sample]:
    """LGG slices labelled by their mask (empty → ``labels[0]``), grouped by patient: each
    slice as stored, plus, where it holds brain, each of ``channels`` as a grey image, and each
    of ``normal_channels`` if the slice has no tumour."""
    samples = []
    for r in scan_kaggle_3m(root):
        tumour = bool(read_mask(r.mask).any())
        label = labels[int(tumour)]
        samples.append(Sample(r.image, label, r.patient))
        alone = [*channels, *(() if tumour else normal_channels)]
        if alone and brain_fraction(load_image(r.image).pixels) >= MIN_BRAIN:
            samples += [Sample(r.image, label, r.patient, c) for c in alone]
    return samples


MIN_BRAIN = 0.15  # share of the frame; the top and bottom slices of a volume hold less
REPEAT_LEVELS = 2.0  # mean grey-level difference under which a channel repeats FLAIR


def brain_fraction(pixels: np.ndarray) -> float:
    """Share of the frame that is head rather than background (a tenth of the brightest)."""
    grey = np.asarray(pixels, dtype=np.float32)
    grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
    return float((grey > 0.1 * np.percentile(grey, 99.5)).mean())


def scan_kaggle_3m_sequences(root: Path, sequences: Sequence[str]) -> list[Sample]:
    """Each LGG channel as a grey image labelled with its sequence, grouped by patient.

    Skipped, as the contrast study skipped them: slices with little head in the frame, and a
    patient's channel that repeats FLAIR (the dataset's stand-in for a missing sequence; it is
    compared over the patient's slices, since JPEG storage keeps copies from being identical).
    """
    by_patient: dict[str, list] = {}
    for r in scan_kaggle_3m(root):
        by_patient.setdefault(r.patient, []).append(r)
    samples = []
    for patient, records in by_patient.items():
        pixels = [load_image(r.image).pixels for r in records]
        kept = [i for i, p in enumerate(pixels) if brain_fraction(p) >= MIN_BRAIN]
        for c, label in enumerate(sequences):
            if c != FLAIR_CHANNEL and kept:
                diff = [
                    np.abs(pixels[i][..., c].astype(np.float32) - pixels[i][..., FLAIR_CHANNEL])
                    for i in kept
                ]
                if float(np.median([d.mean() for d in diff])) < REPEAT_LEVELS:
                    continue
            samples += [Sample(records[i].image, label, patient, c) for i in kept]
    return samples


def scan_dataset(root: Path, label_map: LabelMap) -> list[Sample]:
    """The samples of a folder-per-class dataset, or of a ``kaggle_3m`` one if the task takes it."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the folder holding one folder per class.")
    if _is_kaggle_3m(root):
        if label_map.mask is not None:
            samples = scan_kaggle_3m_labels(
                root, label_map.mask, label_map.mask_channels, label_map.normal_channels
            )
        elif label_map.sequences:
            samples = scan_kaggle_3m_sequences(root, label_map.sequences)
        else:
            raise InputError(
                f"{root} is a kaggle_3m segmentation layout; this task needs class folders."
            )
    else:
        samples = scan_class_folders(root, label_map)
    if len({s.label for s in samples}) < 2:
        raise InputError(
            f"found {len(samples)} images in fewer than two classes under {root}; put each class's "
            f"images ({', '.join(sorted(IMAGE_SUFFIXES))}) in a folder named after it."
        )
    return samples


def dhash_bits(images: torch.Tensor, size: int = 16) -> np.ndarray:
    """Difference hash of each image: ``size``² bits, 1 where grey brightens to the right.

    Written by hand (the ``imagehash`` package computes the same dHash) because it is two tensor
    lines on the already decoded cache, for all images at once, with no PIL round trip per file.
    At 16×16 the 256 bits tell apart different slices of similar-looking brains, which the usual
    8×8 hash does not (most brain slices share one 64-bit silhouette).
    """
    grey = images.float().mean(dim=1, keepdim=True)
    small = F.interpolate(grey, size=(size, size + 1), mode="area")[:, 0]
    return (small[:, :, 1:] > small[:, :, :-1]).flatten(1).numpy()


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits differing between each hash of ``a`` and each of ``b`` (a matrix multiply, exact in
    float32 for these small integers)."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    return a @ (1 - b).T + (1 - a) @ b.T


def near_duplicate_groups(
    bits: np.ndarray, max_distance: int, same_group: Sequence[str] | None = None
) -> np.ndarray:
    """Group id per image: images within ``max_distance`` hash bits of each other are linked, so
    are images sharing a non-empty ``same_group`` entry (a patient); groups are the connected
    components, so a chain of near-duplicates stays together."""
    rows, cols = np.nonzero(np.triu(hamming(bits, bits) <= max_distance, k=1))
    if same_group is not None:
        index: dict[str, int] = {}
        for i, key in enumerate(same_group):
            if key:
                first = index.setdefault(key, i)
                rows, cols = np.append(rows, first), np.append(cols, i)
    n = len(bits)
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def label_conflicts(images: torch.Tensor, labels: Sequence[str]) -> list[list[int]]:
    """Sets of indices whose decoded images are identical but whose labels differ.

    Such copies (the 44-class data files ten slices under both ``Meningioma T1`` and
    ``Meningioma T1C+``) cost one error each whatever a model says, so reports list them.
    """
    by_digest: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        by_digest.setdefault(hashlib.sha1(image.numpy().tobytes()).hexdigest(), []).append(i)
    return [idx for idx in by_digest.values() if len({labels[i] for i in idx}) > 1]


def stratified_group_split(
    labels: Sequence[str], groups: np.ndarray, fractions: Sequence[float], seed: int = 0
) -> list[np.ndarray]:
    """Index arrays, one per fraction (e.g. ``(0.7, 0.15, 0.15)``), stratified by label, with
    every group inside one part.

    Parts after the first are peeled off the remainder one by one with scikit-learn's
    ``StratifiedGroupKFold`` (one fold of ``round(remaining / fraction)``).
    """
    y = np.asarray(labels)
    remaining = np.arange(len(y))
    left = float(sum(fractions))
    parts: list[np.ndarray] = []
    for fraction in reversed(fractions[1:]):
        folds = max(2, round(left / fraction))
        sgkf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        keep, held = next(sgkf.split(remaining, y[remaining], groups[remaining]))
        parts.insert(0, remaining[held])
        remaining, left = remaining[keep], left - fraction
    return [remaining, *parts]


def _affine_flip() -> list[v2.Transform]:
    """The detection study's rotation, flips and shifts."""
    return [
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1)),
    ]


AUGMENTS: dict[str, Callable[[], v2.Transform | None]] = {
    "none": lambda: None,
    # brains are not left-right symmetric in every study's eyes (the contrast study used no flips)
    "affine": lambda: v2.Compose(
        [
            v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    ),
    "affine_flip": lambda: v2.Compose(
        [*_affine_flip(), v2.ColorJitter(brightness=0.2, contrast=0.2)]
    ),
    # plus the grey-level changes a scanner or a source collection makes (histogram, blur,
    # sharpness), so that a collection's look stops being a cue for the label
    "affine_flip_style": lambda: v2.Compose(
        [
            *_affine_flip(),
            v2.ColorJitter(brightness=0.3, contrast=0.4),
            v2.RandomEqualize(p=0.25),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.25),
            v2.RandomAdjustSharpness(2.0, p=0.25),
        ]
    ),
    # what scanners vary, for models that must read any scanner's slice: rotation, field of view
    # (scale), coil shading (bias field), tone curve, contrast, resolution (blur) and noise
    "scanner": lambda: v2.Compose(
        [
            v2.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(0.8, 1.2)),
            v2.ToDtype(torch.float32, scale=True),
            RandomBiasField(),
            scanner_augment(),
        ]
    ),
}


def get_augment(name: str) -> v2.Transform | None:
    if name not in AUGMENTS:
        raise InputError(f"unknown augmentation {name!r}; use one of {sorted(AUGMENTS)}.")
    return AUGMENTS[name]()


NORM_MEAN = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
NORM_STD = torch.tensor(IMAGENET_STD).view(-1, 1, 1)


def sample_image(sample: Sample) -> Image:
    """A sample's file as loaded, its ``channel`` taken alone, as a one-sequence upload arrives."""
    image = load_image(sample.path)
    if sample.channel < 0:
        return image
    return replace(image, pixels=image.pixels[..., sample.channel])


def decode(sample: Sample, prep: Preprocess) -> torch.Tensor:
    """One sample → (C, H, W) uint8 at ``prep.size``: :func:`to_tensor` without its
    normalisation, so the cache matches what an upload goes through, to 1/255."""
    t = to_tensor(sample_image(sample).pixels, replace(prep, imagenet_norm=False))
    return (t * 255).round().clamp(0, 255).to(torch.uint8)


class FolderImages(Dataset):
    """Decoded images (uint8, shared by every :meth:`view`) and integer targets.

    ``images`` holds the whole dataset; a view selects rows through ``index`` without copying.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        prep: Preprocess,
        cache_dir: Path | str | None = None,
        progress: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.prep = prep
        index = {c: i for i, c in enumerate(self.classes)}
        self.targets = torch.tensor([index[s.label] for s in self.samples])
        self.images = self._decode_all(cache_dir, progress)
        self.index = torch.arange(len(self.samples))
        self.augment: v2.Transform | None = None

    def _decode_all(self, cache_dir: Path | str | None, progress: bool) -> torch.Tensor:
        """Decode every file, or read the cache of an earlier run with the same files and size
        (keyed by paths, sizes, modification times and preprocessing)."""
        cache = None
        if cache_dir:
            key = json.dumps(
                [self.prep.to_dict()]
                + [
                    [str(s.path), s.channel, s.path.stat().st_size, s.path.stat().st_mtime]
                    for s in self.samples
                ]
            )
            cache = Path(cache_dir) / f"{hashlib.sha1(key.encode()).hexdigest()}.safetensors"
            if cache.is_file():
                return load_file(str(cache))["images"]
        images = torch.stack(
            [decode(s, self.prep) for s in tqdm(self.samples, desc="decode", disable=not progress)]
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_file({"images": images}, str(cache))
        return images

    def view(self, indices: Sequence[int], augment: str = "none") -> FolderImages:
        """The images at ``indices`` (sharing the cache), optionally augmented."""
        local = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        sub = object.__new__(FolderImages)
        sub.samples = [self.samples[i] for i in local.tolist()]
        sub.classes, sub.prep, sub.images = self.classes, self.prep, self.images
        sub.index, sub.targets = self.index[local], self.targets[local]
        sub.augment = get_augment(augment)
        return sub

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[self.index[i]]
        if self.augment is not None:
            x = self.augment(x)
        x = x.float() / 255 if x.dtype == torch.uint8 else x  # some augmentations end in float
        if self.prep.imagenet_norm:
            c = self.prep.channels
            x = (x - NORM_MEAN[:c]) / NORM_STD[:c]
        return x, self.targets[i]
