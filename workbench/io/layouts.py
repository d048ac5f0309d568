"""File names of the public datasets' on-disk layouts, for readers of uploads and of training
data alike."""

from __future__ import annotations

import re

# ``<patient>_<n>.tif`` of the LGG ``kaggle_3m`` layout (``<patient>_<n>_mask.tif`` its mask).
KAGGLE_SLICE = re.compile(r"^(?P<patient>.+)_(?P<index>\d+)\.tiff?$", re.IGNORECASE)
