"""File names of the public datasets' on-disk layouts, for readers of uploads and of training
data alike."""

from __future__ import annotations

import re

# ``<patient>_<n>.tif`` of the LGG ``kaggle_3m`` layout (``<patient>_<n>_mask.tif`` its mask).
KAGGLE_SLICE = re.compile(r"^(?P<patient>.+)_(?P<index>\d+)\.tiff?$", re.IGNORECASE)
# Its channel order (the dataset's README): pre-contrast T1, FLAIR, post-contrast T1. The masks
# outline the FLAIR abnormality.
KAGGLE_3M_SEQUENCES = ("T1", "FLAIR", "T1C+")
FLAIR_CHANNEL = KAGGLE_3M_SEQUENCES.index("FLAIR")

# The 44-class set's folders (``<type> <contrast>``) spell the tumour types the Portuguese way
# ("Ependimoma") and call normal "_NORMAL"; their English names, which the app shows. A model's
# labels stay the folder names, so a model folder still names the data it learnt.
TYPES_44 = {
    "Astrocitoma": "astrocytoma",
    "Carcinoma": "carcinoma",
    "Ependimoma": "ependymoma",
    "Ganglioglioma": "ganglioglioma",
    "Germinoma": "germinoma",
    "Glioblastoma": "glioblastoma",
    "Granuloma": "granuloma",
    "Meduloblastoma": "medulloblastoma",
    "Meningioma": "meningioma",
    "Neurocitoma": "neurocytoma",
    "Oligodendroglioma": "oligodendroglioma",
    "Papiloma": "papilloma",
    "Schwannoma": "schwannoma",
    "Tuberculoma": "tuberculoma",
    "_NORMAL": "normal",
}
