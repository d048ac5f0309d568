"""``workbench-train <task> [flags]`` and ``python -m workbench.train <task> [flags]``.

The training *command*: it looks the task up in the task registry (:mod:`workbench.tasks`) and
hands the remaining flags to that task's recipe (``TaskSpec.train``), exactly what
``python train/<task>.py [flags]`` runs (those scripts call :func:`run_task`). The name follows
the ``train/`` scripts and the ``workbench-train`` console script it serves; it is not the
training *loop*, which every recipe shares and which lives in :mod:`workbench.training`
(``TrainConfig``, ``fit``), nor a recipe (:mod:`workbench.recipes`). Nothing imports this
module but the entry points.

The registry imports no torch, and a recipe is imported only when its task runs, so ``--help``
and a wrong task name answer at once. A task name that is not registered is one ``error:`` line
and exit status 2, like every other user mistake of the CLI (:mod:`workbench.cli`).
"""

from __future__ import annotations

import argparse
import sys

from workbench.tasks import get_task, list_tasks


def trainable() -> dict[str, str]:
    """Task name -> its title, for every registered task with a training recipe."""
    return {spec.name: spec.title for spec in list_tasks() if spec.train}


def run_task(task: str, argv: list[str] | None = None) -> None:
    """Train ``task`` with ``argv`` (default: the command line's flags); a user mistake ends in
    one ``error:`` line and exit status 2 (:func:`workbench.scripts.run`)."""
    from workbench.scripts import run  # imports torch: only once a task runs

    run(get_task(task).train_main(), argv)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message}\n")  # one line, status 2: the CLI's contract


def build_parser(prog: str) -> argparse.ArgumentParser:
    titles = trainable()
    width = max(map(len, titles))
    tasks = "\n".join(f"  {name:<{width}}  {title}" for name, title in titles.items())
    parser = _Parser(
        prog=prog,
        description="Train one of the workbench's models (research and teaching only).",
        epilog=f"tasks:\n{tasks}\n\n`{prog} <task> --help` lists the task's flags and defaults.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", nargs="?", help="which model to train: " + ", ".join(titles))
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="the task's flags")
    return parser


def main(argv: list[str] | None = None, prog: str = "workbench-train") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.task not in trainable():
        unknown = f"unknown task '{args.task}'" if args.task else "no task given"
        parser.error(f"{unknown}; choose one of {', '.join(trainable())}")
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
