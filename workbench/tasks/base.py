"""What every task declares: how to turn one loaded input into a JSON-able answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.io import Image, load_image
from workbench.weights import ModelBundle

Predict = Callable[[ModelBundle, Image], dict[str, Any]]


@dataclass(frozen=True)
class TaskSpec:
    """A task as the CLI and the app see it.

    ``predict`` must be cheap enough for a batch of CLI inputs; pictures and Grad-CAM are made by
    the task module's own helpers, called only by the app.
    """

    name: str
    title: str
    predict: Predict
    read: Callable[[Path], Image] = load_image
    weights: str = ""  # the model folder / Hub entry name; defaults to the task name

    @property
    def weights_name(self) -> str:
        return self.weights or self.name
