"""The detection study's pipeline over two tasks: the ensemble votes tumour / no tumour, and only
a tumour verdict is outlined by the segmentation model. The Brain tumour tab and
``python -m workbench predict tumor_detect --segment`` both answer through here, so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.io import Image
from workbench.tasks import classify, tumor_detect, tumor_seg
from workbench.weights import ModelBundle

SKIPPED = "skipped: the ensemble voted no tumour"
MISSED = (
    "no tumour pixels, though the ensemble voted tumour: the two models disagree. Read the "
    "segmentation model's card for what it learnt; on other kinds of MR it may miss what the "
    "classifiers see."
)


@dataclass(frozen=True)
class DetectSegment:
    """One slice through the pipeline: the vote, and the mask when the vote was tumour."""

    verdict: classify.Classification
    mask: np.ndarray | None  # (H, W) bool at the slice's size; None when not segmented
    measurements: dict[str, Any]  # tumor_seg.summarise_mask's, or why there is no mask


def detect_then_segment(
    detector: ModelBundle, segmenter: ModelBundle, image: Image, voting: str = "hard"
) -> DetectSegment:
    verdict = classify.classify(detector, image, voting)
    if verdict.label != tumor_detect.POSITIVE:
        return DetectSegment(verdict, None, {"tumor_found": False, "segmentation": SKIPPED})
    mask = tumor_seg.segment(segmenter, image)
    measurements = tumor_seg.summarise_mask(mask, image)
    if not measurements["tumor_found"]:
        measurements["segmentation"] = MISSED
    return DetectSegment(verdict, mask, measurements)


def answer(
    detector: ModelBundle, segmenter: ModelBundle, image: Image, voting: str = "hard"
) -> dict[str, Any]:
    """The JSON answer: the detection answer with the segmentation's measurements."""
    result = detect_then_segment(detector, segmenter, image, voting)
    return {
        **classify.answer(detector, image, result.verdict),
        "voting": voting,
        "votes": result.verdict.votes(),
        "segmentation": {
            **result.measurements,
            "model": segmenter.config.title,
            "weights": segmenter.source,
        },
    }


def slice_votes(detector: ModelBundle, volume: tumor_seg.Volume) -> list[dict[str, Any]]:
    """Each slice's hard-vote verdict and calibrated p(tumour), as a single slice gets them."""
    rows = []
    for k, pixels in enumerate(volume.slices):
        image = Image(pixels, None, "MR", {}, f"{volume.source} slice {k + 1}")
        result = classify.classify(detector, image, "hard")
        rows.append(
            {
                "vote": result.label,
                "unsure": bool(result.check.get("unsure", False)),
                "p_tumor": round(result.probabilities()[tumor_detect.POSITIVE], 3),
            }
        )
    return rows
