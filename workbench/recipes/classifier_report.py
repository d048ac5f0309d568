"""What a trained classifier's folder says about itself: metrics, pictures and the model card.

Scores come from the model *as saved* (reloaded from its folder, float16 storage included) on
the held-out split, per ensemble member and for the ensemble's vote.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from workbench.calibration import Reliability, cross_fitted, fit_temperatures, reliability, scale
from workbench.cards import CardInfo, markdown_table, render_card
from workbench.data.folders import FolderImages
from workbench.io.layouts import KAGGLE_3M_SEQUENCES
from workbench.metrics import classification_summary
from workbench.model_config import ModelConfig
from workbench.models import ensemble_vote
from workbench.recipes.classifier_tasks import ClassifierTask

DATA_NOTE = (
    "The images are a public re-upload of the Kaggle dataset named above; the re-uploaders state "
    "no licence, so these weights are for research and teaching only."
)
GALLERY_MAX = 12


def combine(probs: torch.Tensor, voting: str) -> torch.Tensor:
    """Ensemble probabilities from member probabilities ``(N, M, C)``."""
    return ensemble_vote(probs.clamp_min(1e-12).log(), voting)[0]


def predictions(probs: torch.Tensor, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Probabilities ``(N, C)`` per reported model: each member, then the ensemble's votings
    (the shipped voting first)."""
    names = config.model.member_names()
    out = {name: probs[:, m] for m, name in enumerate(names)}
    if len(names) > 1:
        voting = config.model.args["voting"]
        for mode in dict.fromkeys([voting, "hard", "soft"]):
            out[f"ensemble ({mode} vote)"] = combine(probs, mode)
    return out


def summary_row(name: str, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": name,
        "accuracy": s["accuracy"],
        "macro precision": s["macro"]["precision"],
        "macro recall": s["macro"]["recall"],
        "macro F1": s["macro"]["f1"],
        "weighted F1": s["weighted"]["f1"],
    }


def per_class_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-class table, worst F1 first, so the weak classes head it."""
    rows = [{"class": c, **v} for c, v in s["per_class"].items()]
    return sorted(rows, key=lambda r: (r["f1"], r["class"]))


def group_accuracy(
    s: dict[str, Any], y_true: np.ndarray, y_pred: np.ndarray, task: ClassifierTask
) -> list[dict[str, Any]]:
    """Accuracy within each group of classes (the 44 classes by contrast), plus how often the
    group itself (e.g. the contrast) was right whatever the class."""
    if task.by_group is None:
        return []
    name, group_of = task.by_group
    groups = np.array([group_of(c) for c in s["labels"]])
    rows = []
    for g in sorted(set(groups)):
        keep = groups[y_true] == g
        rows.append(
            {
                name: g,
                "images": int(keep.sum()),
                "accuracy": float((y_pred[keep] == y_true[keep]).mean()),
                f"{name} right": float((groups[y_pred[keep]] == g).mean()),
            }
        )
    return rows


def confusion_png(s: dict[str, Any], path: Path, title: str) -> None:
    labels, cm = s["labels"], np.asarray(s["confusion_matrix"])
    side = max(4.0, 0.28 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7 if len(labels) > 10 else 10)
    ax.set_yticks(range(len(labels)), labels, fontsize=7 if len(labels) > 10 else 10)
    if len(labels) <= 10:
        for (i, j), v in np.ndenumerate(cm):
            colour = "white" if v > cm.max() / 2 else "black"
            ax.text(j, i, str(v), ha="center", va="center", color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(textwrap.fill(title, width=int(side * 9)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def gallery_png(
    view: FolderImages, prob: torch.Tensor, positive: int, path: Path, title: str
) -> dict[str, int]:
    """The held-out images the model got wrong: false negatives (missed ``positive``) on the
    first row, false positives on the second, each with the model's probability of
    ``positive``."""
    y_true, y_pred = view.targets.numpy(), prob.argmax(-1).numpy()
    rows = {
        "false negatives": np.nonzero((y_true == positive) & (y_pred != positive))[0],
        "false positives": np.nonzero((y_true != positive) & (y_pred == positive))[0],
    }
    cols = max(1, min(GALLERY_MAX, max(len(v) for v in rows.values())))
    # at least 5 inches wide, or a short gallery would clip its title
    fig, axes = plt.subplots(2, cols, figsize=(max(2 * cols, 5), 4.6), dpi=100, squeeze=False)
    for r, (name, idx) in enumerate(rows.items()):
        axes[r, 0].set_title(f"{name}: {len(idx)}", loc="left", fontsize=9)
        for c in range(cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                i = int(idx[c])
                ax.imshow(view.images[view.index[i]].permute(1, 2, 0).numpy())
                ax.text(
                    2,
                    12,
                    f"p={prob[i, positive]:.2f}",
                    color="yellow",
                    fontsize=8,
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1},
                )
                # as text, not an x label: axis("off") hides labels
                ax.text(
                    0.5,
                    -0.02,
                    view.samples[i].path.name,
                    transform=ax.transAxes,
                    ha="center",
                    va="top",
                    fontsize=6,
                )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return {name: len(idx) for name, idx in rows.items()}


def calibrate(
    probs: torch.Tensor, y_true: np.ndarray, held: str, bins: int = 15
) -> tuple[dict[str, Any], torch.Tensor, Reliability, Reliability]:
    """One temperature per member, fitted on the held-out ``probs`` ``(N, M, C)``: the
    ``config.json`` entry, the scaled probabilities, and the reliability of the members' mean
    probability before and after scaling, the latter cross-fitted (each half of the split scaled
    with the temperatures fitted on the other), as the in-sample figure flatters."""
    temperature = fit_temperatures(probs, y_true)
    scaled = scale(probs, torch.tensor(temperature).view(-1, 1))
    before = reliability(probs.mean(dim=1).numpy(), y_true, bins)
    after = reliability(cross_fitted(probs, y_true).mean(dim=1).numpy(), y_true, bins)
    calibration = {
        "method": "temperature",
        "temperature": temperature,
        "fitted_on": held,
        "bins": bins,
        "ece_before": before.ece,
        "ece_after_in_sample": reliability(scaled.mean(dim=1).numpy(), y_true, bins).ece,
        "ece_after_cross_fitted": after.ece,
    }
    return calibration, scaled, before, after


def reliability_png(before: Reliability, after: Reliability, path: Path, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, dot area by share of images."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    curves = (("raw", before, "tab:orange"), ("scaled, cross-fitted", after, "tab:blue"))
    for name, r, colour in curves:
        ax.plot(r.confidence, r.accuracy, color=colour, lw=1.2, label=f"{name} (ECE {r.ece:.3f})")
        ax.scatter(r.confidence, r.accuracy, s=20 + 400 * r.share, color=colour, alpha=0.6)
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="confidence (top-1 probability)")
    ax.set(ylabel="accuracy")
    ax.set_title("\n".join(textwrap.wrap(title, 48)), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def calibration_text(calibration: dict[str, Any], names: list[str]) -> str:
    temps = ", ".join(
        f"{n} {t:.2f}" for n, t in zip(names, calibration["temperature"], strict=True)
    )
    what, temperatures = (
        ("the model's", "temperature") if len(names) == 1 else ("the members' mean", "temperatures")
    )
    return (
        "The probabilities this model gives (in the app, in `predict` and in the soft vote above) "
        "are temperature-scaled (Guo et al., 2017): each "
        f"model's logits are divided by one temperature fitted on the {calibration['fitted_on']} "
        f"split by log-likelihood ({temps}); no model's prediction changes"
        + ("" if len(names) == 1 else " (the soft vote's can)")
        + ". Expected calibration "
        f"error of {what} probability ({calibration['bins']} bins): "
        f"{calibration['ece_before']:.3f} raw; scaled, "
        f"{calibration['ece_after_cross_fitted']:.3f} when each half of the split is scaled with "
        f"the {temperatures} fitted on the other half (the diagram's blue curve), "
        f"{calibration['ece_after_in_sample']:.3f} on the images the {temperatures} were fitted "
        "on (optimistic). "
        "![reliability diagram](calibration.png)"
    )


def targets_text(task: ClassifierTask, metrics: dict[str, float]) -> str:
    if not task.targets:
        return ""
    lines = []
    for key, goal in task.targets.items():
        value = metrics[key]
        verdict = "reached" if value >= goal else "**not reached**"
        lines.append(f"- {key.replace('_', ' ')} ≥ {goal:g}: {value:.4f}, {verdict}")
    return "Project targets on this held-out split:\n" + "\n".join(lines)


def source_rows(
    config: ModelConfig, probs: dict[str, torch.Tensor], views: dict[str, FolderImages]
) -> list[dict[str, Any]]:
    """Accuracy of the shipped model per split and source folder, with each class's recall:
    where one source (a scanner, an institution) is weak, the pooled figure hides it."""
    labels, rows = config.labels, []
    for split, view in views.items():
        final = list(predictions(probs[split], config).values())
        pred = final[len(config.model.member_names())] if len(final) > 1 else final[0]
        y_pred, y_true = pred.argmax(-1).numpy(), view.targets.numpy()
        sources = np.array(
            [
                s.source if s.channel < 0 else f"{s.source}, {KAGGLE_3M_SEQUENCES[s.channel]} alone"
                for s in view.samples
            ]
        )
        for src in sorted(set(sources)):
            keep = sources == src
            recall = [
                f"{labels[c]} {(y_pred[keep & (y_true == c)] == c).mean():.3f}"
                for c in sorted(set(y_true[keep]))
            ]
            rows.append(
                {
                    "split": split,
                    "source": src,
                    "images": int(keep.sum()),
                    "accuracy": float((y_pred[keep] == y_true[keep]).mean()),
                    "recall per class": ", ".join(recall),
                }
            )
    return rows


def write_report(
    out: Path,
    config: ModelConfig,
    all_probs: dict[str, torch.Tensor],
    views: dict[str, FolderImages],
    held: str,
    counts: dict[str, dict[str, int]],
    task: ClassifierTask,
    conflicts: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Fit each network's temperature on the held-out split and score every model there with
    the scaled probabilities; write ``confusion.png``, ``calibration.png`` (and ``gallery.png``
    for binary tasks), the metrics and temperatures into ``config.json`` and the card into
    ``README.md``. ``all_probs`` and ``views`` hold the ``held`` split and any other scored one
    (``unseen``); ``conflicts`` are the identical images filed under different labels."""
    labels = config.labels
    view = views[held]
    y_true = view.targets.numpy()
    calibration, probs, before, after = calibrate(all_probs[held], y_true, held)
    temperature = torch.tensor(calibration["temperature"]).view(-1, 1)
    by_source = source_rows(config, {k: scale(v, temperature) for k, v in all_probs.items()}, views)
    reliability_png(before, after, out / "calibration.png", f"{config.title}: {held} split")
    preds = predictions(probs, config)
    summaries = {
        name: classification_summary(y_true, p.argmax(-1).numpy(), labels)
        for name, p in preds.items()
    }
    names = config.model.member_names()
    final = list(summaries)[len(names)] if len(names) > 1 else names[0]  # the shipped voting
    s = summaries[final]
    y_pred = preds[final].argmax(-1).numpy()
    confusion_png(s, out / "confusion.png", f"{config.title}: {held} split")
    gallery = None
    if task.positive is not None:
        gallery = gallery_png(
            view,
            preds[final],
            labels.index(task.positive),
            out / "gallery.png",
            f"{final}: errors on the {held} split",
        )
    groups = group_accuracy(s, y_true, y_pred, task)
    metrics = {
        "accuracy": s["accuracy"],
        "macro_f1": s["macro"]["f1"],
        "weighted_f1": s["weighted"]["f1"],
    }
    config = replace(
        config, calibration=calibration, metrics={**metrics, "split": held, "images": len(view)}
    )
    config.write(out)
    body = card_body(
        config, task, summaries, final, groups, gallery, counts, held, conflicts, by_source
    )
    card = render_card(
        CardInfo(
            title=config.title,
            task_type="image-classification",
            dataset_name=config.training["data_description"],
            dataset_type=(
                task.dataset
                if Path(task.dataset).name == config.training["data"]
                else config.training["data"]
            ),
            body=body,
            metrics={f"{held}_{k}": v for k, v in metrics.items()},
            tags=[task.name, *config.model.member_names()],
            base_model=None,
        )
    )
    (out / "README.md").write_text(card)
    return {
        "held_out": held,
        "summaries": summaries,
        "final": final,
        "by_group": groups,
        "by_source": by_source,
        "gallery": gallery,
        "metrics": metrics,
        "label_conflicts": list(conflicts),
    }


def unavoidable_errors(labels: list[str]) -> int:
    """Errors any single answer makes on identical copies carrying these labels."""
    return len(labels) - max(Counter(labels).values())


def conflicts_text(conflicts: list[dict[str, Any]], held: str, shown: int = 10) -> str:
    """The card's data-quality paragraph: identical images under different labels."""
    listed = "; ".join(" = ".join(f"`{i}`" for i in c["images"]) for c in conflicts[:shown])
    more = f"; and {len(conflicts) - shown} more (report.json)" if len(conflicts) > shown else ""
    in_held = [c for c in conflicts if c["split"] == held]
    lost = sum(unavoidable_errors(c["labels"]) for c in in_held)
    return (
        f"{len(conflicts)} sets of identical images are filed under different labels, so one copy "
        f"of each is wrong whatever a model answers: {listed}{more}. "
        + (
            f"{len(in_held)} of these sets are in the {held} split: at least {lost} of the "
            "errors above are forced by them. "
            if in_held
            else f"None is in the {held} split. "
        )
        + "They are kept as the dataset has them; delete the wrong copies to drop them."
    )


def card_body(
    config: ModelConfig,
    task: ClassifierTask,
    summaries: dict[str, dict[str, Any]],
    final: str,
    groups: list[dict[str, Any]],
    gallery: dict[str, int] | None,
    counts: dict[str, dict[str, int]],
    held: str,
    conflicts: Sequence[dict[str, Any]] = (),
    by_source: Sequence[dict[str, Any]] = (),
) -> str:
    t, opts, recipe = (
        config.training,
        config.training["options"],
        config.training["recipe"],
    )
    s = summaries[final]
    sections = [
        f"Input → output: {task.what}. Labels: {', '.join(f'`{c}`' for c in config.labels)}.",
        "## Training data",
        f"{t['data_description']}. "
        + DATA_NOTE
        + (f" {t['data_note']}" if t.get("data_note") else ""),
        f"Split (stratified by class; near-duplicate images — 16×16 dHash within "
        f"{opts['dup_distance']} of 256 bits, chained — kept on one side, "
        f"{t['near_duplicate_groups']} groups): "
        + ", ".join(f"{k} {v}" for k, v in t["split_counts"].items())
        + f" images. The scores below are on the **{held}** split, never trained on"
        + (
            "; it also chose the best epoch (early stopping), so they are slightly optimistic."
            if held == "val"
            else "."
        )
        + " The held-out file names are in `split.json`: `--split-file` trains another run on "
        "the same split, e.g. at another input size (the near-duplicate hash, computed at the "
        "input size, would otherwise draw a different one).",
        f"## Results ({held} split, {sum(counts[held].values())} images)",
        markdown_table([summary_row(n, v) for n, v in summaries.items()], "{:.4f}"),
        targets_text(task, config.metrics),
    ]
    if groups:
        sections += [f"### Accuracy by {task.by_group[0]}", markdown_table(groups, "{:.4f}")]
    if len(by_source) > 1:
        sections += [
            f"### By source ({final})",
            "Each source folder's held-out images apart (`T1 alone`, `FLAIR alone`, `T1C+ alone`: "
            "one sequence of the LGG slices as a grey image, the way a single DICOM series "
            "arrives; detection takes the T1s alone from tumour-free slices only); `unseen` "
            "rows are patients of institutions held out whole (`--unseen`), never trained on, "
            "early stopping included.",
            markdown_table(list(by_source), "{:.4f}"),
        ]
    sections += [
        f"### Per class ({final}), worst F1 first",
        markdown_table(per_class_rows(s), "{:.3f}"),
        "![confusion matrix](confusion.png)",
    ]
    if gallery is not None:
        missed, alarms = gallery["false negatives"], gallery["false positives"]
        sections += [
            f"Errors: {missed} missed tumour{'s' * (missed != 1)}, {alarms} false "
            f"alarm{'s' * (alarms != 1)}; ![errors](gallery.png)"
        ]
    names = config.model.member_names()
    sections += ["### Calibration", calibration_text(config.calibration, names)]
    if conflicts:
        sections += ["## Data quality", conflicts_text(list(conflicts), held)]
    member_rows = [
        {
            "model": m["arch"],
            "epochs run": m["epochs_run"],
            "best epoch": m["best_epoch"],
            "minutes": round(m["minutes"], 1),
            **({"hard examples": m["hard_examples"]} if "hard_examples" in m else {}),
        }
        for m in t["members"]
    ]
    mining = (
        f" Training images that the starting model got wrong (per member: the table's hard "
        f"examples) were drawn {1 + opts['hard_weight']:g} times as often (`--hard-weight`)."
        if opts.get("hard_weight")
        else ""
    )
    sections += [
        "## Recipe",
        f"Recipe of these weights (`python train/{task.name}.py --preset {t['preset']}"
        + "".join(f" --more-data DIR/{name}" for name in t.get("more_data", []))
        + (f" --unseen '{opts['unseen']}'" if opts.get("unseen") else "")
        + (f" --extra-data DIR/{t['extra_data']}" if t.get("extra_data") else "")
        + "`, "
        "options as stored in config.json): "
        f"{', '.join(opts['arch'].split(','))} initialised from {t['initialised_from']}, "
        f"{opts['size']}×{opts['size']} px, frozen up to `{opts['freeze_up_to'] or 'nothing'}`, "
        f"head `{opts['head']}`, dropout {opts['dropout']}, augmentation `{opts['augment']}`, "
        f"label smoothing {opts['label_smoothing']}, class weighting {opts['class_weighting']}, "
        f"balanced sampler {opts['balanced_sampler']}; {recipe['optimizer']} lr {recipe['lr']}, "
        f"weight decay {recipe['weight_decay']}, {recipe['scheduler']} schedule, batch "
        f"{recipe['batch_size']}, up to {recipe['epochs']} epochs, best epoch by "
        f"`{recipe['monitor']}`.{mining}",
        markdown_table(member_rows, "{:.1f}"),
        f"Training took {t['minutes']:.1f} minutes of wall time on "
        f"{t.get('machine', 'a 2-core CPU shared with other training jobs')} "
        f"({t['prepare_minutes']:.1f} of them decoding or reading "
        "the decoded images). Weight matrices and kernels are stored in float16 (biases and "
        "normalisation statistics in float32) and cast back to float32 on load; the scores above "
        "come from the stored weights.",
        opts.get("note", ""),
        task.study + " `--preset study` (the scripts' default) runs it.",
    ]
    if task.notes:
        sections += ["## Limits", task.notes]
    return "\n\n".join(x for x in sections if x)
