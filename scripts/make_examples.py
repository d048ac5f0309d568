"""Regenerate the app's example inputs in ``examples/`` from the phantom generator.

    python scripts/make_examples.py

Examples are synthetic (no patient data) and small; each task adds a maker to ``MAKERS``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.data.lgg import read_mask, scan_kaggle_3m
from workbench.phantom import write_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tumor_seg(tmp: Path) -> None:
    """Two slices with the largest tumours and one without, from patients never trained on."""
    records = scan_kaggle_3m(write_dataset("tumor_seg", tmp / "lgg", n=2, seed=1234))
    areas = np.array([read_mask(r.mask).sum() for r in records])
    by_patient = {}
    for k in np.argsort(-areas):
        by_patient.setdefault(records[k].patient, k)
    big = list(by_patient.values())[:2]
    empty = next(k for k in range(len(records)) if areas[k] == 0 and records[k].index > 8)
    for name, k in [
        ("tumor_seg_phantom_1.tif", big[0]),
        ("tumor_seg_phantom_2.tif", big[1]),
        ("tumor_seg_phantom_empty.tif", empty),
    ]:
        shutil.copy(records[k].image, EXAMPLES / name)


MAKERS: dict[str, Callable[[Path], None]] = {"tumor_seg": tumor_seg}


def main(tasks: list[str]) -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for task in tasks or list(MAKERS):
        with tempfile.TemporaryDirectory() as tmp:
            MAKERS[task](Path(tmp))
        print(f"examples for {task} written to {EXAMPLES}")


if __name__ == "__main__":
    main(sys.argv[1:])
