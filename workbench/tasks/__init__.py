"""Task registry: each module ``workbench.tasks.<name>`` declares ``SPEC: TaskSpec``.

The CLI and the app look tasks up here by name, so adding a task is adding a module and its name.
"""

from __future__ import annotations

import importlib

from workbench.errors import InputError
from workbench.tasks.base import TaskSpec

TASK_NAMES = ("contrast", "tumor_detect", "tumor_seg", "tumor44", "hemorrhage")


def get_task(name: str) -> TaskSpec:
    """The spec of a task by name; an unknown name is the user's mistake, said in one line."""
    if name not in TASK_NAMES:
        raise InputError(f"unknown task '{name}'; choose one of: {', '.join(TASK_NAMES)}.")
    return importlib.import_module(f"workbench.tasks.{name}").SPEC


__all__ = ["TASK_NAMES", "TaskSpec", "get_task"]
