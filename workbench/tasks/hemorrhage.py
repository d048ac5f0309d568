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

import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.ct import DEFAULT_CHANNELS, is_picture, read_ct, slice_z, window_stack
from workbench.errors import InputError
from workbench.tasks.base import TaskSpec, register

# Registering the task must not load torch (see workbench.tasks.base): torch, pydicom and the
# model code are imported inside the functions that need them.
if TYPE_CHECKING:
    from torch import nn

    from workbench.io import Image
    from workbench.transforms.ct import CTPreprocess
    from workbench.weights import ModelBundle

THRESHOLD = 0.5


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
    from workbench.transforms.ct import CTPreprocess, check_picture_windows, ct_tensor

    prep = CTPreprocess.from_dict(bundle.config.preprocess)
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


@dataclass
class Study:
    """One upload's slices in head order (top first) with their answers: the tab's state and
    the CLI's ``--study`` answer come from this one object."""

    images: list[Image]
    probs: np.ndarray  # (N, labels)
    labels: list[str]
    verdicts: list[dict[str, Any]]  # workbench.ood's unsure / reason per slice
    skipped: list[str]  # files in a zip that were not CT slices

    @property
    def first(self) -> int:
        """The slice to show first."""
        return most_suspicious(self.probs)

    def slice_label(self, k: int) -> str:
        z = slice_z(self.images[k])
        return self.images[k].source + (f", z = {z:.1f} mm" if z is not None else "")

    def summary(self) -> dict[str, Any]:
        return {
            **study_summary(self.labels, self.probs, self.verdicts),
            "most_suspicious_slice": self.first + 1,
            "most_suspicious_file": self.images[self.first].source,
            "skipped_files": self.skipped,
        }

    def slice_answer(self, k: int) -> dict[str, Any]:
        return {
            "slice": k + 1,
            "file": self.images[k].source,
            "z_mm": slice_z(self.images[k]),
            "probabilities": as_dict(self.labels, self.probs[k]),
            **self.verdicts[k],
        }


def read_study(bundle: ModelBundle, paths: Sequence[Path], workdir: Path) -> Study:
    """Read the upload's slices (:func:`read_slices`), order them along the head and assess
    them."""
    images, skipped = read_slices(paths, workdir)
    images = [images[i] for i in order_along_head(images)]
    probs, verdicts = assess(bundle, images)
    return Study(images, probs, bundle.labels, verdicts, skipped)


def gradcam_map(bundle: ModelBundle, image: Image, label: str) -> np.ndarray:
    """Grad-CAM of ``label`` on the slice, in [0, 1] at the slice's own size."""
    from workbench.transforms.ct import CTPreprocess

    if label not in bundle.labels:
        raise InputError(f"unknown label '{label}'; choose one of {', '.join(bundle.labels)}.")
    prep = CTPreprocess.from_dict(bundle.config.preprocess)
    return slice_gradcam(bundle.model, prep, image.pixels, bundle.labels.index(label))


def slice_gradcam(
    model: nn.Module, prep: CTPreprocess, pixels: np.ndarray, target: int
) -> np.ndarray:
    """Grad-CAM of output ``target`` of ``model`` on a CT slice (HU, or a brain-window picture
    read as HU), in [0, 1] at the slice's own size: the tab's map and the card's gallery."""
    import torch
    import torch.nn.functional as F

    from workbench.explain import gradcam
    from workbench.transforms.ct import ct_tensor

    x = ct_tensor(pixels, prep)[None].to(next(model.parameters()).device)
    heat = torch.from_numpy(gradcam(model, x, target))
    heat = F.interpolate(heat[None, None], size=pixels.shape, mode="bilinear")
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
        "model": bundle.config.title,
        "weights": bundle.source,
    }


def predict_series(bundle: ModelBundle, paths: Sequence[Path]) -> dict[str, Any]:
    """The Haemorrhage tab's answer for one study (CT files and zips of a series together): the
    study-level answer, then every slice's, in head order."""
    with tempfile.TemporaryDirectory(prefix="series_") as tmp:
        study = read_study(bundle, paths, Path(tmp))
    return {
        "source": ", ".join(Path(p).name for p in paths),
        **study.summary(),
        "per_slice": [study.slice_answer(k) for k in range(len(study.images))],
        "model": bundle.config.title,
        "weights": bundle.source,
    }


def predict_file(bundle: ModelBundle, path: Path) -> dict[str, Any]:
    """One file's answer: a slice's, or for a zipped series the study's."""
    if zipfile.is_zipfile(path):
        return predict_series(bundle, [path])
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
