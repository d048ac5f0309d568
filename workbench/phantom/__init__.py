"""Synthetic labelled brains, written in each real dataset's on-disk layout.

The real datasets behind several tasks (LGG segmentation, RSNA haemorrhage CT, DSC perfusion) are
out of reach for tests and demo weights, so a procedural head (:mod:`.head`), tumours
(:mod:`.tumor`) and MR physics (:mod:`.mr`) stand in for them. Writers are registered by task
as lazy ``"module:function"`` strings: adding a task is one line, and importing this package
stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from workbench.errors import InputError

PHANTOM_TASKS: dict[str, str] = {
    "tumor_seg": "workbench.phantom.layouts:write_kaggle_3m",
    "contrast": "workbench.phantom.layouts:write_contrast",
    "tumor_detect": "workbench.phantom.layouts:write_tumor_detect",
    "tumor44": "workbench.phantom.layouts:write_tumor44",
    "hemorrhage": "workbench.phantom.ct:write_rsna",
    "perfusion": "workbench.phantom.perfusion:write_dsc",
}


def write_dataset(task: str, out: Path, n: int, seed: int = 0, **kw) -> Path:
    """Write ``n`` phantom subjects for ``task`` under ``out``; returns the dataset's root."""
    if task not in PHANTOM_TASKS:
        raise InputError(
            f"No phantom for task {task!r}; choose one of {', '.join(sorted(PHANTOM_TASKS))}."
        )
    if n < 1:
        raise InputError(f"The number of phantom subjects must be at least 1, not {n}.")
    module, function = PHANTOM_TASKS[task].split(":")
    return getattr(import_module(module), function)(Path(out), n, seed=seed, **kw)
