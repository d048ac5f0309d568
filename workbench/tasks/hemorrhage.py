"""Intracranial haemorrhage on head CT: six sigmoid probabilities per axial slice.

Input: one CT slice, by one of two routes to the same tensor. A DICOM in Hounsfield units is
windowed as the model's ``config.json`` says (the study's brain 40/80, subdural 80/200, soft
tissue 40/380 as three channels, or the brain window alone); a grey PNG/JPEG slice, the way CT is
shared outside PACS, is read as already in the brain window and mapped back to the HU it shows
(:func:`workbench.ct.picture_to_hu`), so only a brain-window model can read it. The labels are
the RSNA ones: ``any`` plus the five subtypes; ``any`` is the model's own output, and a series'
study-level answer is the maximum over its slices.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.ct import (
    DEFAULT_CHANNELS,
    PICTURE_WINDOW,
    get_window,
    hounsfield,
    picture_to_hu,
    window_stack,
)
from workbench.errors import InputError
from workbench.tasks.base import TaskSpec, register

# Registering the task must not load torch (see workbench.tasks.base): torch, pydicom and the
# model code are imported inside the functions that need them.
if TYPE_CHECKING:
    import torch

    from workbench.io import Image
    from workbench.weights import ModelBundle

THRESHOLD = 0.5
Transform = Callable[["torch.Tensor"], "torch.Tensor"]
POSITION = "ImagePositionPatient"
PICTURE = "CTPicture"  # header key marking a slice read from a windowed picture


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
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(window_stack(hu, prep.windows).transpose(2, 0, 1)))
    return F.interpolate(x[None], size=prep.size, mode="bilinear", antialias=True)[0]


def normalise(
    x: torch.Tensor, prep: CTPreprocess, augment: Transform | None = None
) -> torch.Tensor:
    """Windows in [0, 1] → the model's input. ``augment`` (training only) acts before the
    normalisation, so that what an affine transform fills in is 0: air in every window."""
    from workbench.tasks.preprocess import IMAGENET_MEAN, IMAGENET_STD

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
    import torch

    per_channel = values if channels == 3 else (sum(values) / 3,) * channels
    return torch.tensor(per_channel).view(-1, 1, 1)


def _position(header: dict) -> list[float] | None:
    """ImagePositionPatient (mm) when the header holds three finite numbers."""
    values = header.get(POSITION)
    if not isinstance(values, list) or len(values) != 3:
        return None
    return [float(v) for v in values] if all(map(math.isfinite, values)) else None


def read_ct(path: Path) -> Image:
    """A CT slice in HU (RSNA wrap fixed), with its position in the header when known; a grey
    picture is taken as a brain-window slice and mapped back to HU."""
    from workbench.io import load_image
    from workbench.io.images import PHOTO

    image = load_image(path)
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


def check_picture_windows(prep: CTPreprocess) -> None:
    """A picture holds only the brain window: a model fed other windows needs the DICOM."""
    if any(w != PICTURE_WINDOW for w in prep.windows):
        raise InputError(
            f"this model reads the {', '.join(prep.windows)} windows from Hounsfield units, which "
            "a PNG/JPEG slice does not hold; give the DICOM files."
        )


def is_picture(image: Image) -> bool:
    return PICTURE in image.header


def slice_z(image: Image) -> float | None:
    position = image.header.get(POSITION)
    return float(position[2]) if position else None


def order_along_head(images: Sequence[Image]) -> list[int]:
    """Indices of ``images`` from the top of the head down (decreasing z in patient LPS
    coordinates); slices without a position keep their upload order after the others."""
    known = [i for i, im in enumerate(images) if slice_z(im) is not None]
    unknown = [i for i in range(len(images)) if slice_z(images[i]) is None]
    return sorted(known, key=lambda i: -slice_z(images[i])) + unknown


def assess(
    bundle: ModelBundle, images: Sequence[Image], batch: int = 16
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(N, labels) sigmoid probabilities of the slices, in the order given, and from the same
    pass one ``unsure`` verdict per slice (:mod:`workbench.ood`: unlike the training slices, or
    ``any`` too close to the threshold to call)."""
    import torch

    from workbench import ood

    prep = CTPreprocess.from_dict(bundle.config["preprocess"])
    if any(map(is_picture, images)):
        check_picture_windows(prep)
    probs, verdicts = [], []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.stack([ct_tensor(im.pixels, prep) for im in images[start : start + batch]])
            feats, logits = ood.embed(bundle.model, x.to(bundle.device))
            p = torch.sigmoid(logits[:, 0]).float().cpu().numpy()
            f, z = feats.cpu().numpy(), logits.float().cpu().numpy()
            for i in range(len(p)):
                sure = max(p[i, 0], 1 - p[i, 0])  # how far `any` is from a coin toss
                verdicts.append(
                    ood.verdict(bundle.config, bundle.folder, f[i : i + 1], z[i : i + 1], sure)
                )
            probs.append(p)
    return np.concatenate(probs), verdicts


def probabilities(bundle: ModelBundle, images: Sequence[Image], batch: int = 16) -> np.ndarray:
    """(N, labels) sigmoid probabilities of the slices, in the order given."""
    return assess(bundle, images, batch)[0]


def as_dict(labels: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 4) for label, p in zip(labels, probs, strict=True)}


def study_summary(
    labels: Sequence[str], probs: np.ndarray, verdicts: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A series' answer: per label the maximum over slices (any slice positive → study
    positive). With ``verdicts``, the study is unsure when its most suspicious slice is, or when
    most of its slices are unlike the training data."""
    peak = probs.max(axis=0)
    summary = {
        "probabilities": as_dict(labels, peak),
        "positive": [label for label, p in zip(labels, peak, strict=True) if p >= THRESHOLD],
        "slices": len(probs),
    }
    if verdicts:
        top = verdicts[most_suspicious(probs)]
        flagged = sum(v["unsure"] for v in verdicts)
        unsure = top["unsure"] or flagged > len(verdicts) / 2
        summary.update(
            unsure=bool(unsure),
            unsure_slices=flagged,
            reason=top["reason"]
            or (f"{flagged} of {len(verdicts)} slices unsure" if unsure else ""),
        )
    return summary


def most_suspicious(probs: np.ndarray) -> int:
    """The slice to show first: highest ``any`` (column 0), ties broken by the top subtype."""
    return int(np.lexsort((-probs[:, 1:].max(axis=1), -probs[:, 0]))[0])


def read_slices(paths: Sequence[Path], workdir: Path) -> tuple[list[Image], list[str]]:
    """CT slices from uploaded DICOM files, pictures and zips of a series (extracted into
    ``workdir``).

    A file the user picked must be a CT slice; inside a zip, files that are not (a DICOMDIR, a
    report) are skipped and named in the second list. No slice at all is an error, and so is an
    upload that mixes patients or series: one study's answer must come from one series.
    """
    from workbench.io.archive import extract_zip
    from workbench.io.dicom import series_key

    images: list[Image] = []
    skipped: list[str] = []
    keys: set[str] = set()

    def add(path: Path) -> None:
        images.append(read_ct(path))
        if (key := series_key(path)) is not None:
            keys.add(key)

    for number, path in enumerate(map(Path, paths)):
        if not zipfile.is_zipfile(path):
            add(path)
            continue
        for member in extract_zip(path, workdir / f"zip{number}"):
            try:
                add(member)
            except InputError:
                skipped.append(member.name)
    if not images:
        raise InputError("no CT slice found in the upload; give head CT DICOM files or a zip.")
    if len(keys) > 1:
        raise InputError(
            f"the upload mixes {len(keys)} series (other patients or other series); a study's "
            "answer needs one series: upload each series on its own."
        )
    return images, skipped


def gradcam_map(bundle: ModelBundle, image: Image, label: str) -> np.ndarray:
    """Grad-CAM of ``label`` on the slice, in [0, 1] at the slice's own size."""
    import torch
    import torch.nn.functional as F

    from workbench.explain import gradcam

    if label not in bundle.labels:
        raise InputError(f"unknown label '{label}'; choose one of {', '.join(bundle.labels)}.")
    prep = CTPreprocess.from_dict(bundle.config["preprocess"])
    x = ct_tensor(image.pixels, prep)[None].to(bundle.device)
    heat = torch.from_numpy(gradcam(bundle.model, x, bundle.labels.index(label)))
    heat = F.interpolate(heat[None, None], size=image.pixels.shape, mode="bilinear")
    return heat[0, 0].clamp(0, 1).numpy()


def window_views(image: Image, names: Sequence[str] = DEFAULT_CHANNELS) -> list[np.ndarray]:
    """The slice in each window as a grey RGB picture (uint8), as a reader would page them."""
    stack = (window_stack(image.pixels, names) * 255).round().astype(np.uint8)
    return [np.repeat(stack[..., i : i + 1], 3, axis=-1) for i in range(len(names))]


def predict(bundle: ModelBundle, image: Image) -> dict[str, Any]:
    probs, verdicts = assess(bundle, [image])
    labels = bundle.labels
    return {
        "source": image.source,
        "probabilities": as_dict(labels, probs[0]),
        "positive": [label for label, p in zip(labels, probs[0], strict=True) if p >= THRESHOLD],
        **verdicts[0],
        "slice_z_mm": slice_z(image),
        "model": bundle.config.get("title", bundle.config["model"]["name"]),
        "weights": bundle.source,
    }


def predict_series(bundle: ModelBundle, path: Path) -> dict[str, Any]:
    """A zipped CT series: the study's answer (maximum over slices), as the tab gives it."""
    with tempfile.TemporaryDirectory(prefix="series_") as tmp:
        images, skipped = read_slices([path], Path(tmp))
    summary = study_summary(bundle.labels, *assess(bundle, images))
    return {
        "source": path.name,
        **summary,
        "skipped": skipped,
        "model": bundle.config.get("title", bundle.config["model"]["name"]),
        "weights": bundle.source,
    }


def predict_file(bundle: ModelBundle, path: Path) -> dict[str, Any]:
    """One file's answer: a slice's, or for a zipped series the study's."""
    if zipfile.is_zipfile(path):
        return predict_series(bundle, path)
    return predict(bundle, read_ct(path))


SPEC = register(
    TaskSpec(
        name="hemorrhage",
        title="Intracranial haemorrhage (head CT)",
        predict=predict,
        read=read_ct,
        predict_file=predict_file,
        zips=True,
        phantom="workbench.phantom.ct:write_rsna",
        train="workbench.recipes.hemorrhage:main",
        tab="workbench.ui.hemorrhage:build",
        tab_title="Haemorrhage",
        endpoint="hemorrhage_analyse",
        examples=(
            "hemorrhage_phantom_subdural.dcm",
            "hemorrhage_phantom_intraventricular.dcm",
            "hemorrhage_phantom_normal.dcm",
            "hemorrhage_phantom_series.zip",  # one patient's series, 24 slices
        ),
    )
)
