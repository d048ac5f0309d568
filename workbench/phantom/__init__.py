"""Synthetic labelled brains, written in each real dataset's on-disk layout.

The real datasets behind several tasks (LGG segmentation, RSNA haemorrhage CT, DSC perfusion) are
out of reach for tests and demo weights, so a procedural head (:mod:`.head`), tumours
(:mod:`.tumor`) and MR physics (:mod:`.mr`) stand in for them. Each task names its writer in its
spec (``TaskSpec.phantom``, a lazy ``"module:function"`` string): adding a task adds no line
here, and importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import InputError


def phantom_writers() -> dict[str, str]:
    """Task name → its writer's ``"module:function"``, in registry order."""
    from workbench.tasks import list_tasks  # the registry is cheap to import: no torch

    return {spec.name: spec.phantom for spec in list_tasks() if spec.phantom}


def write_dataset(task: str, out: Path, n: int, seed: int = 0, **kw) -> Path:
    """Write ``n`` phantom subjects for ``task`` under ``out``; returns the dataset's root."""
    writers = phantom_writers()
    if task not in writers:
        raise InputError(f"No phantom for task {task!r}; choose one of {', '.join(writers)}.")
    if n < 1:
        raise InputError(f"The number of phantom subjects must be at least 1, not {n}.")
    from workbench.tasks.base import resolve_ref

    return resolve_ref(writers[task])(Path(out), n, seed=seed, **kw)
