"""Model cards: the Hub's metadata format (``model-index``) plus honest prose.

huggingface_hub's ModelCard writes the front matter so the Hub shows the metrics; the body is the
training script's own words about data, recipe and limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from workbench import DISCLAIMER
from workbench.model_config import ModelConfig

_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

> {{ disclaimer }}

{{ body }}
"""


@dataclass
class CardInfo:
    """What a training script knows about the model it saved."""

    title: str
    task_type: str  # Hub task type: image-classification, image-segmentation, ...
    dataset_name: str
    dataset_type: str
    body: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    base_model: str | None = None


def render_card(info: CardInfo) -> str:
    """Markdown with Hub front matter; every metric becomes a ``model-index`` entry."""
    results = [
        EvalResult(
            task_type=info.task_type,
            dataset_type=info.dataset_type,
            dataset_name=info.dataset_name,
            metric_type=name,
            metric_value=float(value),
            metric_name=name,
        )
        for name, value in info.metrics.items()
    ]
    data = ModelCardData(
        model_name=info.title,
        license="apache-2.0",
        library_name="pytorch",
        pipeline_tag=info.task_type,
        tags=["medical-imaging", "brain", "research-only", *info.tags],
        eval_results=results or None,
        base_model=info.base_model,
    )
    card = ModelCard.from_template(
        data, template_str=_TEMPLATE, title=info.title, disclaimer=DISCLAIMER, body=info.body
    )
    return str(card.content)


def markdown_table(rows: list[dict[str, object]], float_fmt: str = "{:.3f}") -> str:
    """A GitHub-markdown table from a list of same-keyed dicts (cards and CLI reports)."""
    if not rows:
        return ""
    keys = list(rows[0])

    def cell(v: object) -> str:
        return float_fmt.format(v) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def render_index(weights_root: Path) -> str:
    """``weights/README.md``: one row per model folder, its results read back from the card's
    ``model-index`` metadata, so the index cannot disagree with the cards."""
    rows = []
    for config_file in sorted(weights_root.glob("*/config.json")):
        folder = config_file.parent
        config = ModelConfig.read(folder)
        results = ModelCard.load(folder / "README.md").data.eval_results or []
        training = config.training
        rows.append(
            {
                "task": f"[{folder.name}]({folder.name}/README.md)",
                "model": config.title,
                "trained on": training.get("data_description", training.get("data", "")),
                "results (held out)": ", ".join(
                    f"{r.metric_name} {r.metric_value:.3f}" for r in results
                ),
                "MB": f"{(folder / 'model.safetensors').stat().st_size / 1e6:.2f}",
            }
        )
    return _INDEX.format(table=markdown_table(rows))


_INDEX = """# Shipped weights

Each folder is a Hugging Face Hub model repo as `python train/<task>.py --out weights/<task>`
writes it (`config.json`, `model.safetensors`, the card `README.md`, and the card's pictures).
The app loads `weights/<task>/` when present, else the Hub repo named in `registry.json`
(overridable with `WORKBENCH_<TASK>_REPO` / `_REVISION`). The cards say how each model was
trained and where it falls short; this table is regenerated from them by
`python scripts/weights_index.py`.

{table}

For research and teaching only, not for diagnosis.
"""


def put_section(card: str, section: str) -> str:
    """``card`` with the section headed like ``section`` (its first line, ``## Title``) replaced,
    or ``section`` inserted before the data-quality, recipe or limits section (or at the end):
    bench scripts add measured sections to a card the training recipe wrote."""
    heading = section.splitlines()[0]
    head, found, rest = card.partition(f"\n{heading}\n")
    if found:
        _, nxt, tail = rest.partition("\n## ")
        return head + "\n" + section + ("\n## " + tail if nxt else "")
    for anchor in ("\n## Data quality\n", "\n## Recipe\n", "\n## Limits\n"):
        if anchor in card:
            before, _, after = card.partition(anchor)
            return before + "\n" + section + anchor + after
    return card.rstrip("\n") + "\n\n" + section
