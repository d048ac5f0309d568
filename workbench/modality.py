"""Is an upload a head CT slice? Asked before an MR model answers.

An MR classifier's own "unlike the training data" score misses some brain-window CT slices: a
grey head with a bright skull is near enough to MR in its features. The haemorrhage model knows
head CT, and its out-of-distribution statistic separates the two well: it flags every MR slice
it was measured on and passes about nine in ten held-out RSNA slices (its card's "Unsure"
section). So a picture that is in distribution for the CT model is taken as head CT, and the MR
models say they are unsure of it. A DICOM or NIfTI file says its modality itself.
"""

from __future__ import annotations

from workbench.errors import InputError
from workbench.io import Image
from workbench.io.images import PHOTO

REASON_CT = "looks like a head CT slice, not MR"
CT_TASK = "hemorrhage"  # the model that knows head CT


def looks_like_head_ct(image: Image) -> bool:
    """Whether ``image`` is a head CT slice: by its header for DICOM, by the haemorrhage model's
    out-of-distribution statistic for a picture (False when that model is not available)."""
    if image.modality != PHOTO:
        return image.modality == "CT"
    from workbench.ct import as_ct
    from workbench.tasks import get_task
    from workbench.tasks.hemorrhage import assess
    from workbench.weights import load

    try:
        bundle = load(get_task(CT_TASK).weights_name)
        ct = as_ct(image)
    except InputError:  # no CT model here (WeightsNotFoundError), or not a grey picture
        return False
    verdict = assess(bundle, [ct])[1][0]
    return verdict["ood_score"] is not None and verdict["ood_score"] <= verdict["ood_threshold"]
