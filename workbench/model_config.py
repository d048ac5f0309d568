"""A model folder's ``config.json``, typed.

Every reader used to index the JSON with string keys, so a misspelt or missing key surfaced as a
``KeyError`` deep in an upload's answer, or not at all: a recipe option that never reached
``config["model"]`` shipped a card that described another network. :class:`ModelConfig` is the
one place that knows the file's sections: :func:`workbench.weights.save_pretrained` writes only
what it accepts and :func:`workbench.weights.load_folder` reads only through it, so an unknown
or missing section is one clear error when the folder is written or opened.

The sections that describe the network and how it is fed or answered (``model``, ``labels``,
``task``, ``title``) are fields. ``preprocess`` and ``postprocess`` stay mappings here because
their shape is the task's (MR windows, CT windows, perfusion frames): each task parses them with
its own dataclass (:class:`workbench.transforms.mr.Preprocess`, ``CTPreprocess``,
``InputSpec``). ``training``, ``metrics``, ``calibration`` and ``ood`` are the recipe's reports,
kept as written.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`workbench.models.build_model` builds: a registered factory and its args."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args}

    def member_names(self) -> list[str]:
        """The backbone of each network: one for a single model, each member's for an ensemble."""
        specs = self.args["members"] if self.name == "ensemble" else [self.to_dict()]
        return [s["args"].get("backbone", s["name"]) for s in specs]


@dataclass(frozen=True)
class ModelConfig:
    """``config.json``: the network, its labels and how to feed it, then the recipe's reports."""

    task: str  # the registered task whose ``predict`` reads this folder
    title: str  # what the model is, in a few words (answers, cards, the Models tab)
    model: ModelSpec
    labels: tuple[str, ...]
    preprocess: dict[str, Any]  # parsed by the task's own preprocessing dataclass
    postprocess: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # data, split, recipe, history
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out results
    calibration: dict[str, Any] = field(default_factory=dict)  # temperature scaling, if fitted
    ood: dict[str, Any] = field(default_factory=dict)  # workbench.ood statistics, if fitted

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Parse ``config.json``'s content; an unknown or missing section is a ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{CONFIG_NAME}: unknown section(s) {', '.join(unknown)}")
        required = {f.name for f in fields(cls) if _required(f)}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{CONFIG_NAME}: missing section(s) {', '.join(missing)}")
        model = data["model"]
        if not isinstance(model, dict) or "name" not in model or set(model) - {"name", "args"}:
            raise ValueError(f'{CONFIG_NAME}: "model" must be {{"name": ..., "args": {{...}}}}')
        return cls(
            **{**data, "model": ModelSpec(model["name"], dict(model.get("args", {})))},
        )._checked()

    def _checked(self) -> ModelConfig:
        labels = tuple(self.labels)
        if not all(isinstance(label, str) for label in labels):
            raise ValueError(f'{CONFIG_NAME}: "labels" must be a list of names')
        return replace(self, labels=labels)

    def to_dict(self) -> dict[str, Any]:
        """The JSON content, in field order; empty optional sections are left out."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["model"] = self.model.to_dict()
        out["labels"] = list(self.labels)
        optional = {f.name for f in fields(self) if not _required(f)}
        return {k: v for k, v in out.items() if k not in optional or v}

    @classmethod
    def read(cls, folder: Path | str) -> ModelConfig:
        path = Path(folder) / CONFIG_NAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except ValueError as err:  # json.JSONDecodeError is a ValueError too
            raise ValueError(f"{path}: {err}") from None

    def write(self, folder: Path | str) -> Path:
        path = Path(folder) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING
