"""The task registry: every task module registers one :class:`TaskSpec` when imported.

This package imports the task modules below, so the registry is complete as soon as it is
imported, and cheaply: task modules import torch and the like only inside their functions. The
import order is the registry's order, which is the app's tab order.

Adding a task is one module that calls :func:`register` (see ``docs/ARCHITECTURE.md``), its
import line here, its weights folder and its tests; ``tests/test_task_contract.py`` then checks
every part of it.
"""

from __future__ import annotations

from workbench.errors import InputError
from workbench.tasks.base import _REGISTRY, TaskSpec, register

# Importing a task module registers its task, in this order: the app's tab order (the Brain
# tumour tab shows detection, then segmentation). A new task adds its line here.
# isort: off
from workbench.tasks import tumor_detect  # noqa: F401
from workbench.tasks import tumor_seg  # noqa: F401
from workbench.tasks import contrast  # noqa: F401
from workbench.tasks import tumor44  # noqa: F401
from workbench.tasks import hemorrhage  # noqa: F401
from workbench.tasks import perfusion  # noqa: F401
# isort: on


def list_tasks() -> tuple[TaskSpec, ...]:
    """Every registered task, in registration (tab) order."""
    return tuple(_REGISTRY.values())


def get_task(name: str) -> TaskSpec:
    """The spec of a task by name; an unknown name is the user's mistake, said in one line."""
    if name not in _REGISTRY:
        raise InputError(f"unknown task '{name}'; choose one of: {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


__all__ = ["TaskSpec", "get_task", "list_tasks", "register"]
