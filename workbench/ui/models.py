"""The Models tab: which weights each task uses, where they came from, and their model cards.

It only resolves model folders and reads ``config.json`` / ``README.md``; it loads no weights,
so it is cheap and works even when a task has no model yet (it says how to get one).
"""

from __future__ import annotations

import re
from typing import Any

import gradio as gr

from workbench.errors import InputError
from workbench.model_config import ModelConfig
from workbench.tasks import get_task, list_tasks
from workbench.weights import CARD_NAME, resolve

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
# Cards link their pictures relatively (right on the Hub); the page shows them in a gallery.
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def architecture(spec: dict[str, Any]) -> str:
    """A short name for a model spec: backbone / encoder, ensemble members."""
    args = spec.get("args", {})
    if spec.get("name") == "ensemble":
        return "ensemble of " + ", ".join(architecture(m) for m in args.get("members", []))
    parts = [args.get(k) for k in ("arch", "encoder", "backbone") if args.get(k)]
    return " / ".join(str(p).removeprefix("tu-") for p in parts) or str(spec.get("name"))


def model_tasks() -> list[str]:
    """Every registered task, in tab order."""
    return [spec.name for spec in list_tasks()]


def model_row(task: str) -> dict[str, str]:
    """One line of the table; a missing model is a row that says how to get one."""
    try:
        folder, source = resolve(get_task(task).weights_name, local_files_only=True)
    except InputError:
        return {
            "task": task,
            "model": "—",
            "weights": "missing",
            "trained on": f"no model yet: python train/{task}.py --help",
            "metrics": "",
        }
    config = ModelConfig.read(folder)
    metrics = config.metrics
    shown = ", ".join(
        f"{k} {v:.3f}" for k, v in list(metrics.items())[:4] if isinstance(v, int | float)
    )
    training = config.training
    return {
        "task": task,
        "model": architecture(config.model.to_dict()),
        "weights": source,
        "trained on": str(training.get("data_description") or training.get("data", "")),
        "metrics": shown,
    }


def model_card(task: str) -> tuple[str, list[tuple[str, str]]]:
    """The card's prose (the Hub metadata block is for machines, not for this page) and the
    pictures it links, as (file, caption) pairs for a gallery."""
    try:
        folder, _ = resolve(get_task(task).weights_name, local_files_only=True)
    except InputError as err:
        return f"**{task}:** {err}", []
    card = folder / CARD_NAME
    if not card.is_file():
        return "(no model card)", []
    text = _FRONT_MATTER.sub("", card.read_text())
    pictures = [
        (str(folder / name), alt or name)
        for alt, name in _IMAGE_LINK.findall(text)
        if (folder / name).is_file()
    ]
    return _IMAGE_LINK.sub(
        lambda m: f"*({m.group(1) or 'figure'}: in the gallery below)*", text
    ), pictures


def table() -> list[list[str]]:
    return [list(model_row(task).values()) for task in model_tasks()]


def build() -> None:
    gr.Markdown(
        "The models behind each tab, where their weights come from (`weights/<task>/` "
        "in this clone, or a Hugging Face Hub repo), what they were trained on, and "
        "their model cards."
    )
    models = gr.Dataframe(
        value=table,
        headers=["task", "model", "weights", "trained on", "metrics"],
        interactive=False,
        wrap=True,
        column_widths=["9%", "21%", "17%", "33%", "20%"],
    )
    tasks = model_tasks()
    task = gr.Dropdown(tasks, value=tasks[0], label="Model card")
    card = gr.Markdown()
    pictures = gr.Gallery(
        label="The card's figures",
        columns=2,
        height="auto",
        object_fit="contain",  # whole figures: a cropped confusion matrix loses its axes
        elem_id="card-figures",
    )
    # no triggers: runs once when the page loads and again on every choice, one read per card
    gr.on(None, model_card, task, [card, pictures], api_name="model_card")
    gr.Button("Refresh").click(table, None, models, api_name="models")
