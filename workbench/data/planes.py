"""Sagittal and coronal planes of the LGG patients, written in the ``kaggle_3m`` layout.

Every LGG slice is axial, and the only sagittal and coronal images in the classification sets are
tumours (the 4-class set's figshare part), so a classifier can learn "not axial → tumour": real
sagittal scanner slices of healthy volunteers came out ``tumor`` at 0.97–0.99. Reslicing each
patient's axial stack gives real sagittal and coronal slices of both classes, labelled by the
resliced mask, with the three sequences in their usual channels. They are written as
``OUT/<patient>/<patient>_<n>.tif`` + ``_mask.tif``, so every reader of the layout (detection's
mask labels, contrast's sequences, the patient split) takes them as they are.

The tifs carry no slice spacing. The through-plane scale is therefore estimated per patient: the
brain's height is taken as ``HEIGHT_RATIO`` of its anterior–posterior length (adult heads: about
0.75–0.85), spread over the slices that hold brain, and jittered by ``±JITTER`` (other spacings).
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.data.lgg import patients, read_mask, scan_kaggle_3m
from workbench.io import load_image

HEIGHT_RATIO = 0.8  # brain height / anterior–posterior length
JITTER = 0.15  # relative spread of the through-plane scale
HEAD_LEVEL = 0.1  # of the 99.5th percentile: head rather than background (as ``brain_fraction``)
MIN_HEAD = 0.15  # planes with less head in the frame are skipped (as the contrast study did)


def patient_volume(records) -> tuple[np.ndarray, np.ndarray]:
    """(Z, H, W, 3) uint8 image and (Z, H, W) bool mask, slices inferior → superior."""
    # the tifs are 8-bit; the reader returns their values as float32
    image = np.stack([load_image(r.image).pixels for r in records]).clip(0, 255).astype(np.uint8)
    mask = np.stack([read_mask(r.mask) for r in records])
    return image, mask


def through_plane_scale(head: np.ndarray, rng: np.random.Generator) -> float:
    """Pixels per slice so that the head's height is ``HEIGHT_RATIO`` of its length."""
    slices = np.flatnonzero(head.any(axis=(1, 2)))
    rows = np.flatnonzero(head.any(axis=(0, 2)))
    if len(slices) < 2 or len(rows) < 2:
        return 1.0
    length = rows[-1] - rows[0] + 1
    height = slices[-1] - slices[0] + 1
    return float(HEIGHT_RATIO * length / height * rng.uniform(1 - JITTER, 1 + JITTER))


def _resize(plane: np.ndarray, height: int, resample: Image.Resampling) -> np.ndarray:
    """Stretch a plane's rows (slices) to ``height`` and centre it in a square frame."""
    width = plane.shape[1]
    channels = plane.reshape(*plane.shape[:2], -1)
    out = np.zeros((width, width, channels.shape[-1]), plane.dtype)
    height = min(height, width)
    top = (width - height) // 2
    for c in range(channels.shape[-1]):
        stretched = Image.fromarray(channels[..., c]).resize((width, height), resample)
        out[top : top + height, :, c] = np.asarray(stretched)
    return out.reshape(width, width, *plane.shape[2:])


def planes(
    image: np.ndarray, mask: np.ndarray, step: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every ``step``-th sagittal then coronal plane with enough head: (H, W, 3) and (H, W).

    Superior at the top; sagittal planes face left (anterior first), coronal planes are
    radiological (the patient's right on the left), as scanners display them.
    """
    grey = image.astype(np.float32).mean(axis=-1)
    head = grey > HEAD_LEVEL * np.percentile(grey, 99.5)
    height = round(image.shape[0] * through_plane_scale(head, rng))
    views = (
        (lambda a, i: a[::-1, :, i], image.shape[2]),  # sagittal: (Z, H) at column i
        (lambda a, i: a[::-1, i], image.shape[1]),  # coronal: (Z, W) at row i
    )
    for take, count in views:
        offset = int(rng.integers(step))
        for i in range(offset, count, step):
            picture = _resize(take(image, i), height, Image.Resampling.BILINEAR)
            outline = _resize(take(mask, i).astype(np.uint8) * 255, height, Image.NEAREST)
            if (picture.mean(axis=-1) > HEAD_LEVEL * 255).mean() >= MIN_HEAD:
                yield picture, outline


def write_planes(source: Path, out: Path, step: int = 12, seed: int = 0) -> int:
    """Write every patient's planes under ``out``; returns how many were written."""
    records = scan_kaggle_3m(source)
    written = 0
    for patient in patients(records):
        rng = np.random.default_rng([seed, zlib.crc32(patient.encode())])
        image, mask = patient_volume([r for r in records if r.patient == patient])
        folder = out / patient
        folder.mkdir(parents=True, exist_ok=True)
        for n, (picture, outline) in enumerate(planes(image, mask, step, rng), start=1):
            stem = folder / f"{patient}_{n}"
            # deflate: lossless, a third of the raw size
            Image.fromarray(picture).save(f"{stem}.tif", compression="tiff_adobe_deflate")
            Image.fromarray(outline).save(f"{stem}_mask.tif", compression="tiff_adobe_deflate")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a kaggle_3m folder (or its parent)")
    parser.add_argument("out", type=Path, help="where the planes' patient folders go")
    parser.add_argument("--step", type=int, default=12, help="every n-th plane (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{write_planes(args.source, args.out, args.step, args.seed)} planes in {args.out}")


if __name__ == "__main__":
    main()
