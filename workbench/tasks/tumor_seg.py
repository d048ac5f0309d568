"""Brain-tumour segmentation on one MR slice (U-Net / DeepLabV3+ through smp).

Input: a 3-channel LGG-style slice (pre-contrast, FLAIR, post-contrast) or any grey slice
(repeated to three channels, which the model saw in training through channel dropout); or a whole
patient (:func:`read_volume`: a zip of ``kaggle_3m`` slices, a DICOM series, a NIfTI volume),
segmented slice by slice and cleaned of specks in 3D (:func:`segment_volume`).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import InputError
from workbench.tasks.base import TaskSpec, read_image, register

# Registering the task must not load torch (see workbench.tasks.base): the heavy imports are
# made inside the functions that need them.
if TYPE_CHECKING:
    import nibabel as nib
    import PIL.Image

    from workbench.io import Image
    from workbench.io.series import Series
    from workbench.weights import ModelBundle

THRESHOLD = 0.5
BATCH = 16


def probability_map(bundle: ModelBundle, image: Image) -> np.ndarray:
    """Tumour probability per pixel of the original slice."""
    import torch
    import torch.nn.functional as F

    from workbench.transforms.mr import Preprocess, to_tensor

    prep = Preprocess.from_dict(bundle.config.preprocess)
    with torch.inference_mode():
        x = to_tensor(image.pixels, prep)[None].to(bundle.device)
        prob = torch.sigmoid(bundle.model(x))
        prob = F.interpolate(
            prob, size=image.pixels.shape[:2], mode="bilinear", align_corners=False
        )
        return prob[0, 0].float().cpu().numpy()


def segment(bundle: ModelBundle, image: Image) -> np.ndarray:
    return probability_map(bundle, image) >= THRESHOLD


def summarise_mask(mask: np.ndarray, image: Image) -> dict[str, Any]:
    """Area in pixels, and in mm² when the pixel spacing is known."""
    area = int(mask.sum())
    mm2 = None if image.spacing is None else round(area * image.spacing[0] * image.spacing[1], 2)
    return {"tumor_found": area > 0, "area_px": area, "area_mm2": mm2}


def predict(bundle: ModelBundle, image: Image) -> dict[str, Any]:
    return {
        "source": image.source,
        **summarise_mask(segment(bundle, image), image),
        "model": bundle.config.title,
        "weights": bundle.source,
    }


def is_volume(path: Path) -> bool:
    """A whole patient (a zip of slices or of a DICOM series, a NIfTI volume), not one slice."""
    from workbench.io.nifti import is_nifti_file

    return zipfile.is_zipfile(path) or is_nifti_file(path)  # by content: names get lost


def predict_file(bundle: ModelBundle, path: Path) -> dict[str, Any]:
    """One file's answer: a slice's area, or a whole patient's volume summary."""
    if not is_volume(path):
        return predict(bundle, read_image(path))
    with tempfile.TemporaryDirectory(prefix="volume_") as tmp:
        volume = read_volume(path, Path(tmp))
    return segment_volume(bundle, volume).summary


SPEC = register(
    TaskSpec(
        name="tumor_seg",
        title="Brain tumour segmentation",
        predict=predict,
        predict_file=predict_file,
        zips=True,
        phantom="workbench.phantom.layouts:write_kaggle_3m",
        train="workbench.recipes.tumor_seg:main",
        tab="workbench.ui.tumor:build",
        tab_title="Brain tumour",
        endpoint="tumor_segment",
        examples=(
            "tumor_seg_phantom_1.tif",
            "tumor_seg_phantom_2.tif",
            "tumor_seg_phantom_empty.tif",
            "tumor_seg_phantom_patient.zip",  # a whole patient, slices and masks
        ),
    )
)


SEQUENCES = 3  # a 4D upload with three volumes is three co-registered sequences, as channels


@dataclass
class Volume:
    """A whole patient to segment: its slices in order, and what places them in space."""

    slices: np.ndarray  # (Z, H, W) or (Z, H, W, 3) pixels
    source: str
    voxel_ml: float | None = None
    truth: np.ndarray | None = None  # (Z, H, W) masks that came with the upload (kaggle_3m)
    series: Series | None = None  # the input's grid and affine, to write the mask volume on
    voxel_mm: tuple[float, float, float] | None = None  # the user's (column, row, slice) size

    @property
    def spacing(self) -> str:
        """Where the volume in ml comes from, for the summary."""
        if self.series is not None:
            return "from the file"
        if self.voxel_mm is not None:
            return "given: " + " × ".join(f"{v:g}" for v in self.voxel_mm) + " mm"
        return "unknown (slice pictures carry none): give the voxel size to get ml"


MAX_VOXEL_MM = 20.0  # no MR voxel is larger; a bigger number is a typo (cm, or µm)


def voxel_size(text: str | None) -> tuple[float, float, float] | None:
    """The user's voxel size, "column row slice" in mm (commas or x allowed); blank: none."""
    parts = (text or "").replace(",", " ").replace("x", " ").replace("×", " ").split()
    if not parts:
        return None
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 < v <= MAX_VOXEL_MM for v in values):
        raise InputError(
            f"voxel size {text!r}: give three sizes in mm, column, row and slice, each above 0 "
            f"and at most {MAX_VOXEL_MM:g} (e.g. 0.94 0.94 5)."
        )
    return values


def _kaggle_slices(files: list[Path]) -> list[tuple[int, Path]]:
    from workbench.io.layouts import KAGGLE_SLICE

    found = []
    for f in files:
        m = KAGGLE_SLICE.match(f.name)
        if m and not f.stem.lower().endswith("_mask"):
            found.append((int(m["index"]), f))
    return sorted(found)


def read_volume(
    path: Path, workdir: Path, voxel_mm: tuple[float, float, float] | None = None
) -> Volume:
    """A patient from a zip of ``kaggle_3m`` slices (masks, when there, become the truth), a zip
    or folder of one DICOM series, or a NIfTI volume (one sequence, or three as a 4D file).

    ``voxel_mm`` sizes the voxels of slice pictures, which carry no spacing; a DICOM or NIfTI
    header's own spacing wins over it."""
    from workbench.io import load_image
    from workbench.io.archive import extract_zip
    from workbench.io.series import load_series

    path = Path(path)
    if zipfile.is_zipfile(path):
        files = extract_zip(path, workdir)
        if slices := _kaggle_slices(files):
            images = [load_image(f).pixels for _, f in slices]
            if len({im.shape for im in images}) > 1:
                raise InputError(f"{path.name}: the slices differ in size; give one patient.")
            masks = [f.with_name(f"{f.stem}_mask{f.suffix}") for _, f in slices]
            truth = None
            if all(m.is_file() for m in masks):
                truth = np.stack([load_image(m).pixels for m in masks]) > 127
                truth = truth.any(axis=-1) if truth.ndim == 4 else truth
            voxel_ml = None if voxel_mm is None else float(np.prod(voxel_mm)) / 1000
            return Volume(np.stack(images), path.name, voxel_ml, truth, voxel_mm=voxel_mm)
    series = load_series(path, tr=1.0)  # the time step means nothing here
    if series.data.shape[3] not in (1, SEQUENCES):
        raise InputError(
            f"{path.name}: a series with {series.data.shape[3]} time points is a 4D acquisition; "
            "give one volume (or three co-registered sequences), or use the Perfusion tab."
        )
    # Axial slices, anterior at the top, whatever order the file stores its voxels in: a
    # sagittal or RAS-stored NIfTI would otherwise reach the model sideways or upside down.
    data = series.axial()
    data = data[..., 0] if data.shape[3] == 1 else data
    return Volume(data, path.name, series.voxel_volume_ml, series=series)


@dataclass
class VolumeResult:
    mask: np.ndarray  # (Z, H, W) bool, after post-processing
    areas_px: list[int]
    summary: dict[str, Any]


def segment_volume(
    bundle: ModelBundle, volume: Volume, progress: Callable[[int, int], None] | None = None
) -> VolumeResult:
    """Every slice segmented, then the patient's connected components below the model's speck
    size removed (``config.json`` ``postprocess``, chosen on validation patients in training)."""
    import torch
    import torch.nn.functional as F

    from workbench.metrics import segmentation_scores
    from workbench.transforms.mr import Preprocess, to_tensor

    prep = Preprocess.from_dict(bundle.config.preprocess)
    shape = volume.slices.shape[1:3]
    probs = []
    with torch.inference_mode():
        for start in range(0, len(volume.slices), BATCH):
            x = torch.stack([to_tensor(s, prep) for s in volume.slices[start : start + BATCH]])
            p = torch.sigmoid(bundle.model(x.to(bundle.device))).float().cpu()
            probs.append(F.interpolate(p, size=shape, mode="bilinear", align_corners=False)[:, 0])
            if progress:
                progress(min(start + BATCH, len(volume.slices)), len(volume.slices))
    raw = torch.cat(probs).numpy() >= THRESHOLD
    # The speck size was chosen at the model's input size; scale it to this grid.
    scale = shape[0] * shape[1] / (prep.size[0] * prep.size[1])
    min_voxels = bundle.config.postprocess.get("min_component_voxels", 0)
    from workbench.transforms.mask import drop_small_components

    mask = drop_small_components(raw, round(min_voxels * scale))
    areas = [int(a) for a in mask.sum(axis=(1, 2))]
    summary: dict[str, Any] = {
        "source": volume.source,
        "slices": len(areas),
        "tumor_found": bool(mask.any()),
        "voxels": int(mask.sum()),
        "volume_ml": None if volume.voxel_ml is None else round(mask.sum() * volume.voxel_ml, 2),
        "voxel_size": volume.spacing,
        # Slices count from 1, as in the tab's table and the per-slice PNG names.
        "largest_slice": int(np.argmax(areas)) + 1 if mask.any() else None,
        "slices_with_tumor": [k + 1 for k, a in enumerate(areas) if a],
    }
    if volume.truth is not None:
        summary["scores"] = {
            k: (round(v, 4) if np.isfinite(v) else None)
            for k, v in segmentation_scores(mask, volume.truth).items()
        }
    summary.update(model=bundle.config.title, weights=bundle.source)
    return VolumeResult(mask, areas, summary)


def mask_nifti(volume: Volume, mask: np.ndarray) -> nib.Nifti1Image:
    """The mask on the input's grid (same affine and voxel order); a picture stack gets the
    voxel size the user gave, or 1 mm."""
    import nibabel as nib

    data = mask.astype(np.uint8)
    if volume.series is not None:
        return volume.series.to_nifti(volume.series.from_axial(data))
    return nib.Nifti1Image(
        np.transpose(data, (2, 1, 0)), np.diag([*(volume.voxel_mm or (1,) * 3), 1])
    )


def mask_png(mask: np.ndarray) -> PIL.Image.Image:
    """A slice's mask as the field's 0 / 255 PNG."""
    import PIL.Image

    return PIL.Image.fromarray(mask.astype(np.uint8) * 255)
