"""Brain-tumour segmentation on one MR slice (U-Net / DeepLabV3+ through smp).

Input: a 3-channel LGG-style slice (pre-contrast, FLAIR, post-contrast) or any grey slice
(repeated to three channels, which the model saw in training through channel dropout).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from workbench.io import Image
from workbench.tasks.base import TaskSpec
from workbench.tasks.preprocess import Preprocess, to_tensor
from workbench.weights import ModelBundle

THRESHOLD = 0.5


@torch.inference_mode()
def probability_map(bundle: ModelBundle, image: Image) -> np.ndarray:
    """Tumour probability per pixel of the original slice."""
    prep = Preprocess.from_dict(bundle.config["preprocess"])
    x = to_tensor(image.pixels, prep)[None].to(bundle.device)
    prob = torch.sigmoid(bundle.model(x))
    prob = F.interpolate(prob, size=image.pixels.shape[:2], mode="bilinear", align_corners=False)
    return prob[0, 0].float().cpu().numpy()


def segment(bundle: ModelBundle, image: Image) -> np.ndarray:
    return probability_map(bundle, image) >= THRESHOLD


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its connected components (26-connected in a volume, 8 in a slice) of
    fewer than ``min_voxels`` voxels: specks a network leaves on healthy slices, which published
    LGG pipelines remove once a whole patient is segmented."""
    if min_voxels <= 0 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def summarise_mask(mask: np.ndarray, image: Image) -> dict[str, Any]:
    """Area in pixels, and in mm² when the pixel spacing is known."""
    area = int(mask.sum())
    mm2 = None if image.spacing is None else round(area * image.spacing[0] * image.spacing[1], 2)
    return {"tumor_found": area > 0, "area_px": area, "area_mm2": mm2}


def predict(bundle: ModelBundle, image: Image) -> dict[str, Any]:
    return {
        "source": image.source,
        **summarise_mask(segment(bundle, image), image),
        "model": bundle.config.get("title", bundle.config["model"]["name"]),
        "weights": bundle.source,
    }


SPEC = TaskSpec(name="tumor_seg", title="Brain tumour segmentation", predict=predict)
