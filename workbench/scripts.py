"""What every ``train/*.py`` script shares: flags from the dataclasses, the finish (card, Hub).

The training recipe's flags are generated from :class:`~workbench.training.TrainConfig`, so a
new field there is a new flag everywhere, with the task's own defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from workbench.errors import InputError
from workbench.training import TrainConfig
from workbench.weights import push_to_hub, weights_dir

T = TypeVar("T")


def _flag_type(hint: Any):
    if hint in (int, float, str):
        return hint
    if hint is bool:
        return lambda s: s.lower() in {"1", "true", "yes", "on"}
    return float  # float | None: only grad_clip today


_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """Each field's trailing ``# comment`` in the dataclass source: ``--help`` shows the same
    words the code is documented with, instead of a second copy in field metadata."""
    return {
        m[1]: m[2]
        for line in inspect.getsource(cls).splitlines()
        if (m := _FIELD_COMMENT.match(line))
    }


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type[T], defaults: T) -> None:
    """One ``--field-name`` flag per dataclass field, defaulting to ``defaults``' value."""
    group = parser.add_argument_group(f"{cls.__name__} ({cls.__doc__ or ''}".strip() + ")")
    hints = get_type_hints(cls)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        flag = {"dest": f.name, "default": getattr(defaults, f.name)}
        if hints[f.name] is bool:
            flag["action"] = argparse.BooleanOptionalAction
        elif get_origin(hints[f.name]) is Literal:  # a typed set of values: argparse checks it
            flag["choices"] = get_args(hints[f.name])
        else:
            flag["type"] = _flag_type(hints[f.name])
        group.add_argument(f"--{f.name.replace('_', '-')}", help=comments.get(f.name, ""), **flag)


def dataclass_from_args(cls: type[T], args: argparse.Namespace) -> T:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


class TrainParser(argparse.ArgumentParser):
    """A training script's parser: it refuses to train over a shipped model folder.

    ``--out weights/<task>`` replaces the weights the app serves; a run meant as an experiment
    must not do that by a slip of the path, so it takes ``--force``.
    """

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extra = super().parse_known_args(args, namespace)
        out = getattr(parsed, "out", None)
        if out is not None and not getattr(parsed, "force", False) and _ships(Path(out)):
            self.error(
                f"--out {out} holds a shipped model (weights/): train elsewhere, or add --force "
                "to replace it."
            )
        return parsed, extra


def _ships(out: Path) -> bool:
    """Whether ``out`` is a model folder under the project's ``weights/``."""
    shipped = weights_dir().resolve()
    folder = out.resolve()
    return (folder / "config.json").is_file() and shipped in folder.parents


def train_parser(description: str, defaults: TrainConfig) -> argparse.ArgumentParser:
    """``--data``, ``--out``, Hub flags and the training recipe with the task's defaults."""
    parser = TrainParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder (real layout)")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument(
        "--force", action="store_true", help="allow --out to replace a model under weights/"
    )
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="upload the model folder to this Hub repo"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    parser.add_argument("--data-note", default="", help="what the data is, for the model card")
    add_dataclass_args(parser, TrainConfig, defaults)
    return parser


def preset_parser(
    description: str,
    options_cls: type[T],
    presets: dict[str, tuple[T, TrainConfig]],
    argv: list[str] | None,
) -> argparse.ArgumentParser:
    """A train parser whose defaults come from ``--preset``: ``study`` (the paper's recipe) or
    ``cpu`` (the recipe the shipped weights were trained with on two CPU cores)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(presets), default="study")
    opts, cfg = presets[pre.parse_known_args(argv)[0].preset]
    parser = train_parser(description, cfg)
    parser.add_argument(
        "--preset",
        choices=sorted(presets),
        default="study",
        help="recipe the defaults come from: 'study' (the paper) or 'cpu' (the shipped weights)",
    )
    add_dataclass_args(parser, options_cls, opts)
    return parser


def finish(out: Path, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write ``report.json`` beside the model and push to the Hub when asked."""
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"pushed {out} to {url}")


def run(main, argv: list[str] | None = None) -> None:
    """Run a script's ``main``; user mistakes end in one ``error:`` line and exit status 2."""
    try:
        main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
