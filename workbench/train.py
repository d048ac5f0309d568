"""``workbench-train <task> [flags]`` and ``python -m workbench.train <task> [flags]``.

The training *command*: it looks the task up in :data:`RECIPES` and hands the remaining flags to
that recipe's ``main``, exactly what ``python train/<task>.py [flags]`` runs (those scripts call
:func:`run_task`). The name follows the ``train/`` scripts and the ``workbench-train`` console
script it serves; it is not the training *loop*, which every recipe shares and which lives in
:mod:`workbench.training` (``TrainConfig``, ``fit``), nor a recipe (:mod:`workbench.recipes`).
Nothing imports this module but the entry points.

A recipe is imported only when its task runs, so ``--help`` and a wrong task name answer at once
without loading torch. A task name that is not in the table is one ``error:`` line and exit
status 2, like every other user mistake of the CLI (:mod:`workbench.cli`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """Where a task's training lives."""

    module: str  # the recipe module; its ``main(argv)`` (or ``main(task, argv)``) trains
    summary: str  # one line for ``--help``
    shared: bool = False  # a recipe serving several tasks: its main takes the task name first

    def main(self, task: str) -> Callable[[list[str] | None], Any]:
        main = importlib.import_module(self.module).main
        return partial(main, task) if self.shared else main


CLASSIFIER = "workbench.recipes.classifier"
RECIPES: dict[str, Recipe] = {
    "contrast": Recipe(CLASSIFIER, "MR contrast classifier on folder-per-class slices", True),
    "tumor_detect": Recipe(
        CLASSIFIER, "tumour-detection ensemble on class folders or LGG kaggle_3m", True
    ),
    "tumor44": Recipe(CLASSIFIER, "44-class tumour type x contrast classifier", True),
    "tumor_seg": Recipe("workbench.recipes.tumor_seg", "tumour segmentation on LGG kaggle_3m"),
    "hemorrhage": Recipe("workbench.recipes.hemorrhage", "haemorrhage (6 labels) on RSNA"),
    "perfusion": Recipe("workbench.recipes.perfusion", "Tmax net on DSC perfusion series"),
}


def run_task(task: str, argv: list[str] | None = None) -> None:
    """Train ``task`` with ``argv`` (default: the command line's flags); a user mistake ends in
    one ``error:`` line and exit status 2 (:func:`workbench.scripts.run`)."""
    from workbench.scripts import run  # imports torch: only once a task runs

    run(RECIPES[task].main(task), argv)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}\n")  # one line, status 2: the CLI's contract


def build_parser(prog: str) -> argparse.ArgumentParser:
    width = max(map(len, RECIPES))
    tasks = "\n".join(f"  {name:<{width}}  {r.summary}" for name, r in RECIPES.items())
    parser = _Parser(
        prog=prog,
        description="Train one of the workbench's models (research and teaching only).",
        epilog=f"tasks:\n{tasks}\n\n`{prog} <task> --help` lists the task's flags and defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", nargs="?", help="which model to train: " + ", ".join(RECIPES))
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the task's flags")
    return parser


def main(argv: list[str] | None = None, prog: str = "workbench-train") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.task not in RECIPES:
        unknown = f"unknown task '{args.task}'" if args.task else "no task given"
        parser.error(f"{unknown}; choose one of {', '.join(RECIPES)}")
    # The recipe's own parser names itself after sys.argv[0]: make its usage line say
    # `workbench-train contrast ...`, not `workbench-train ...` without the task.
    argv0, sys.argv[0] = sys.argv[0], f"{prog} {args.task}"
    try:
        run_task(args.task, args.flags)
    finally:
        sys.argv[0] = argv0
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m workbench.train"))
