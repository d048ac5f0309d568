"""What the classifier tabs share: Grad-CAM pictures and real example files found at runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.io import Image
from workbench.render import overlay_heatmap, to_rgb
from workbench.tasks import classify
from workbench.weights import ModelBundle

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_examples(*relative: str) -> list[str]:
    """Real files offered by path when ``../shared/data`` exists (never copied into the repo).

    A folder entry gives its first image in name order.
    """
    found = []
    for rel in relative:
        path = SHARED_DATA / rel
        if path.is_dir():
            path = next(iter(sorted(p for p in path.iterdir() if p.is_file())), path)
        if path.is_file():
            found.append(str(path))
    return found


def explained(bundle: ModelBundle, image: Image, target: int) -> tuple[np.ndarray, np.ndarray]:
    """The slice for display and the Grad-CAM map of class ``target`` blended over it."""
    rgb = to_rgb(image.pixels)
    return rgb, overlay_heatmap(rgb, classify.explain(bundle, image, target))
