"""Training recipe for Tmax from DSC perfusion series: the study's 1×1×1 Conv3D nets and a 3D U-Net.

Patients, never voxels, are split: a held-out set is put aside first; the rest is split into
``--folds`` folds (6 in the study); in each fold a few training patients are kept back for early
stopping and the fold's own patients are its test set. Every test patient is scored against the
target with MSE, MAE (seconds), mean bias, SSIM and the Dice of the Tmax > 6 s region, next to
two comparisons: the *mean-map baseline* (the voxel-wise mean of the training patients' target
maps) and the workbench's oSVD deconvolution. Early stopping watches the validation loss (MAE
alone rewards a flat map: most tissue is normal); the model shipped is the fold model with the
best validation loss, scored once more on the held-out patients.

Targets: ``reference`` (the commercial map in each patient folder: what the study trained on),
``osvd`` (the workbench's own deconvolution: for sites with series but no commercial maps), or
``truth`` (simulated patients only: the simulator's ground truth, which has none of the
deconvolution's bias).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from skimage.metrics import structural_similarity
from sklearn.model_selection import KFold
from torch import nn

from workbench.cards import CardInfo, markdown_table, render_card
from workbench.data.perfusion import (
    LAYOUTS,
    TARGETS,
    InputSpec,
    Patient,
    load_patient,
    scan_patients,
)
from workbench.errors import InputError
from workbench.metrics import dice
from workbench.model_config import ModelConfig
from workbench.models import build_model
from workbench.models.perfusion import predict_volume
from workbench.scripts import add_dataclass_args, dataclass_from_args, finish, train_parser
from workbench.training import TrainConfig, fit, improved, write_history
from workbench.weights import save_pretrained

THRESHOLD = 6.0  # s: the thrombectomy triage threshold
METRICS = ("mse", "mae", "bias", "ssim", "dice_gt6")


@dataclass(frozen=True)
class Architecture:
    """One of the study's nets: its factory, how it trains (voxel strips or whole volumes), the
    name of its width argument and its training defaults."""

    factory: str
    layout: str
    width_arg: str | None
    defaults: TrainConfig


ARCHITECTURES: dict[str, Architecture] = {
    "conv1": Architecture(
        "perfusion_conv1",
        "voxels",
        None,
        TrainConfig(epochs=80, batch_size=4, lr=1e-2, patience=10),
    ),
    "conv2": Architecture(
        "perfusion_conv2",
        "voxels",
        "hidden",
        TrainConfig(epochs=80, batch_size=4, lr=3e-3, patience=10),
    ),
    "unet3d": Architecture(
        "perfusion_unet3d",
        "volumes",
        "width",
        # a dozen volumes make a dozen steps an epoch: one volume per step, many epochs
        TrainConfig(epochs=80, batch_size=1, lr=3e-3, patience=15),
    ),
}


@dataclass
class PerfusionOptions:
    """Model, target and data options of the perfusion recipe."""

    model: str = "conv2"  # conv1 | conv2 | unet3d
    target: str = "reference"  # reference | osvd | truth
    frames: int = 40  # time points on the resampled grid
    step: float = 1.5  # s between them
    aif_channels: bool = True  # the AIF as more input channels (not in the study)
    width: int = 16  # conv2 hidden channels; U-Net base width
    loss: str = "mse"  # mse | asymmetric
    over_weight: float = 2.0  # asymmetric: weight of over-predicted voxels' squared error
    folds: int = 6
    holdout: int = 1  # patients kept out of the cross-validation
    val_patients: int = 1  # per fold, training patients kept back for early stopping
    max_patients: int = 0  # 0: all
    threads: int = 1  # torch CPU threads: these nets are too small to gain from more, and on
    # a shared CPU a second thread mostly spins (50x slower steps measured on a busy machine)


class TmaxLoss(nn.Module):
    """Squared error over the scored voxels (target channel 1 is their weight); with
    ``over_weight`` > 1, over-predictions count more: overestimating Tmax inflates the
    hypoperfused volume, the error the study most wanted to avoid."""

    def __init__(self, over_weight: float = 1.0) -> None:
        super().__init__()
        self.over_weight = over_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tmax, weight = target[:, :1], target[:, 1:]
        error = output - tmax
        penalty = torch.where(error > 0, self.over_weight, 1.0)
        return (weight * penalty * error**2).sum() / weight.sum().clamp_min(1.0)


LOSSES = {"mse": lambda opts: TmaxLoss(1.0), "asymmetric": lambda opts: TmaxLoss(opts.over_weight)}


def _val_mae(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    weight = target[:, 1:]
    return {"val_mae": float((weight * (output - target[:, :1]).abs()).sum() / weight.sum())}


def tmax_scores(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MSE, MAE, bias (s), SSIM and Tmax > 6 s Dice of one patient, over ``mask``.

    SSIM is computed slice by slice (DSC slabs are too thin for a 3D window) on the maps zeroed
    outside the mask, with the target's range, and averaged over the masked voxels.
    """
    error = pred[mask] - target[mask]
    pred, target = np.where(mask, pred, 0.0), np.where(mask, target, 0.0)
    data_range = max(float(target.max() - target.min()), 1e-6)
    ssim = np.zeros(mask.shape)
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        ssim[z] = structural_similarity(target[z], pred[z], data_range=data_range, full=True)[1]
    return {
        "mse": float(np.mean(error**2)),
        "mae": float(np.mean(np.abs(error))),
        "bias": float(np.mean(error)),
        "ssim": float(ssim[mask].mean()),
        "dice_gt6": dice((pred > THRESHOLD) & mask, (target > THRESHOLD) & mask),
    }


def mean_map(patients: Sequence[Patient]) -> np.ndarray | float:
    """The baseline: the voxel-wise mean of the training targets over the patients whose mask
    covers the voxel; their overall mean where none does or when grids differ."""
    overall = float(np.mean(np.concatenate([p.target[p.mask] for p in patients])))
    if len({p.mask.shape for p in patients}) > 1:
        return overall
    total = np.sum([np.where(p.mask, p.target, 0.0) for p in patients], axis=0)
    count = np.sum([p.mask for p in patients], axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), overall).astype(np.float32)


def score_patients(
    model: nn.Module, patients: Sequence[Patient], baseline: np.ndarray | float, target: str
) -> dict[str, list[dict[str, float]]]:
    """Per method (cnn, mean_map, osvd), one score row per patient."""
    rows: dict[str, list[dict[str, float]]] = {"cnn": [], "mean_map": [], "osvd": []}
    for p in patients:
        rows["cnn"].append(tmax_scores(predict_volume(model, p.inputs), p.target, p.mask))
        flat = np.broadcast_to(np.asarray(baseline, np.float32), p.mask.shape)
        rows["mean_map"].append(tmax_scores(flat, p.target, p.mask))
        if target != "osvd":  # against its own map oSVD is trivially perfect
            rows["osvd"].append(tmax_scores(p.osvd, p.target, p.mask))
    return {method: r for method, r in rows.items() if r}


def _means(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in rows])) for m in METRICS}


def _table(results: dict[str, list[dict[str, float]]], spread: bool) -> list[dict[str, Any]]:
    """One row per method; ``spread``: mean ± std over the rows (folds), else the mean."""
    table = []
    for method, rows in results.items():
        row: dict[str, Any] = {"method": method}
        for m in METRICS:
            values = np.array([r[m] for r in rows])
            row[m] = f"{values.mean():.3f} ± {values.std():.3f}" if spread else values.mean()
        table.append(row)
    return table


def split_patients(
    n: int, opts: PerfusionOptions, seed: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Held-out indices and, per fold, (fit, validation, test) indices: all by patient."""
    needed = opts.holdout + max(opts.folds, 2) + opts.val_patients
    if opts.folds < 2 or n < needed:
        raise InputError(
            f"{n} patients are too few for {opts.folds} folds, {opts.holdout} held out and "
            f"{opts.val_patients} for validation (need at least {needed} and 2 or more folds); "
            "generate more or lower --folds."
        )
    order = np.random.default_rng(seed).permutation(n)
    held_out, rest = np.sort(order[: opts.holdout]), order[opts.holdout :]
    folds = []
    for train, test in KFold(opts.folds, shuffle=True, random_state=seed).split(rest):
        train = rest[train]
        val = np.random.default_rng([seed, len(folds)]).choice(train, opts.val_patients, False)
        folds.append((np.setdiff1d(train, val), np.sort(val), np.sort(rest[test])))
    return held_out, folds


def model_spec(opts: PerfusionOptions, spec: InputSpec) -> dict[str, Any]:
    arch = ARCHITECTURES[opts.model]
    args: dict[str, Any] = {"in_channels": spec.channels}
    if arch.width_arg:
        args[arch.width_arg] = opts.width
    return {"name": arch.factory, "args": args}


def train(
    data_dir: Path, out: Path, opts: PerfusionOptions, cfg: TrainConfig, data_note: str = ""
) -> dict[str, Any]:
    """Cross-validate, score the held-out patients, write the model folder; returns the report.

    Torch runs on ``opts.threads`` threads meanwhile (restored afterwards).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        return _train(data_dir, out, opts, cfg, data_note)
    finally:
        torch.set_num_threads(previous)


def _train(
    data_dir: Path, out: Path, opts: PerfusionOptions, cfg: TrainConfig, data_note: str
) -> dict[str, Any]:
    if opts.model not in ARCHITECTURES:
        raise InputError(f"unknown model {opts.model!r}; choose one of {', '.join(ARCHITECTURES)}.")
    if opts.loss not in LOSSES:
        raise InputError(f"unknown loss {opts.loss!r}; choose one of {', '.join(LOSSES)}.")
    if opts.target not in TARGETS:
        raise InputError(f"unknown target {opts.target!r}; choose one of {', '.join(TARGETS)}.")
    spec = InputSpec(frames=opts.frames, step=opts.step, aif_channels=opts.aif_channels)
    folders = scan_patients(data_dir)[: opts.max_patients or None]
    held_out, folds = split_patients(len(folders), opts, cfg.seed)
    print(f"reading {len(folders)} patients (target: {opts.target})")
    patients = [load_patient(folder, opts.target, spec) for folder in folders]
    layout = LAYOUTS[ARCHITECTURES[opts.model].layout]
    loss = LOSSES[opts.loss](opts)

    def pick(indices: np.ndarray) -> list[Patient]:
        return [patients[i] for i in indices]

    fold_results: dict[str, list[dict[str, float]]] = {}
    best = None
    for k, (fit_idx, val_idx, test_idx) in enumerate(folds):
        set_seed(cfg.seed)  # the network's initial weights follow --seed, not earlier RNG use
        result = fit(
            build_model(model_spec(opts, spec)),
            layout(pick(fit_idx), True),
            layout(pick(val_idx), False),
            loss,
            cfg,
            metrics_fn=_val_mae,
            desc=f"fold {k + 1}/{opts.folds}",
        )
        write_history(result.history, out / "runs" / f"fold{k}")
        train_patients = pick(np.concatenate([fit_idx, val_idx]))
        scores = score_patients(result.model, pick(test_idx), mean_map(train_patients), opts.target)
        for method, rows in scores.items():
            fold_results.setdefault(method, []).append(_means(rows))
        print(
            f"fold {k + 1}: MAE cnn {fold_results['cnn'][-1]['mae']:.3f} s, mean map "
            f"{fold_results['mean_map'][-1]['mae']:.3f} s (best epoch {result.best_epoch})"
        )
        if best is None or improved(result.best_score, best[0], cfg):
            best = (result.best_score, k, result.model)
    rest = np.setdiff1d(np.arange(len(patients)), held_out)
    held_scores = score_patients(best[2], pick(held_out), mean_map(pick(rest)), opts.target)
    cv_table, held_table = _table(fold_results, spread=True), _table(held_scores, spread=False)
    print(markdown_table(cv_table))
    print(markdown_table(held_table))
    print(error_sentence(held_table, opts.target))
    # the headline first (the Models tab shows the first few): MAE of the net, then of the others
    metrics = {"heldout_mae": held_table[0]["mae"]}
    metrics.update({f"heldout_{row['method']}_mae": row["mae"] for row in held_table[1:]})
    metrics.update({f"heldout_{m}": held_table[0][m] for m in METRICS if m != "mae"})
    config = ModelConfig.from_dict(
        {
            "task": "perfusion",
            "title": f"{opts.model} Tmax from DSC perfusion (target: {opts.target})",
            "model": model_spec(opts, spec),
            "labels": ["tmax_s"],
            "preprocess": spec.to_dict(),
            "metrics": metrics,
            "training": {
                "data": data_dir.name,
                "data_description": data_note or data_dir.name,
                "patients": len(folders),
                "held_out": [patients[i].name for i in held_out],
                "target": opts.target,
                "folds": opts.folds,
                "shipped_fold": best[1],
                "recipe": asdict(cfg),
                "options": asdict(opts),
            },
        }
    )
    tables = {"cross_validation": cv_table, "held_out": held_table}
    save_pretrained(best[2], config, out, model_card(config, tables, data_note))
    return {"folds": fold_results, "held_out": held_scores, "tables": tables, "config": config}


def error_sentence(held_table: list[dict[str, Any]], target: str) -> str:
    """The headline: mean absolute Tmax error of each method on the held-out patients."""
    errors = ", ".join(f"{row['method']} {row['mae']:.2f} s" for row in held_table)
    return f"Mean absolute Tmax error against the {target} on the held-out patients: {errors}."


def model_card(config: ModelConfig, tables: dict[str, list], data_note: str) -> str:
    t, o = config.training, config.training["options"]
    spec = config.preprocess
    body = f"""A {o["model"]} net that reads Tmax (seconds) from a DSC perfusion series voxel by
voxel: input each voxel's ΔR2* curve on a fixed grid ({spec["frames"]} frames every
{spec["step"]} s) divided by the peak of the automatically selected arterial input function
(AIF){", plus the AIF itself as more channels" if spec["aif_channels"] else ""}; output Tmax in
the brain mask. CBF, CBV and MTT come from the template fit (the maps' default).

## Training data
`{t["data"]}`: {t["patients"]} patients, target **{t["target"]}**. {data_note}

## Results
Scores inside the scored mask (perfused brain, grey and white matter where the data gives a
tissue mask); `dice_gt6` is the overlap of Tmax > 6 s with the target's. `mean_map` is the
baseline of the voxel-wise mean training map; `osvd` is the deconvolution read against the same
target.

**{error_sentence(tables["held_out"], t["target"])}**

Held-out patients ({", ".join(t["held_out"])}), shipped model (fold {t["shipped_fold"] + 1},
best validation loss):

{markdown_table(tables["held_out"])}

{t["folds"]}-fold cross-validation by patient (mean ± std over folds):

{markdown_table(tables["cross_validation"])}

## Recipe
Loss {o["loss"]}{f" (over-predictions ×{o['over_weight']})" if o["loss"] == "asymmetric" else ""},
{t["recipe"]["optimizer"]} lr {t["recipe"]["lr"]}, early stopping on the validation loss.
`python train/perfusion.py --help` lists every option.

## Limits and use on real data
If the data above is the phantom (`python -m workbench phantom perfusion`), this is a
demonstration: simulated heads, one tracer-kinetic model, one TR, no motion. It shows that a
tiny net can learn Tmax and, trained on the simulator's truth, lose the SVD's positive bias; it
says nothing about patients. To train on real data, put each patient's DSC series in
`<patient>/dsc/` (DICOM, or `dsc.nii.gz`) and the site's reference Tmax map in `<patient>/tmax/`
on the same grid, then `python train/perfusion.py --data DIR --out runs/perfusion --model
conv2 --target reference` (then compare it with the shipped one before copying it to
`weights/perfusion`); without reference maps, `--target osvd` learns the workbench's own
deconvolution.
"""
    return render_card(
        CardInfo(
            title=config.title,
            task_type="image-to-image",
            dataset_name=t["data"],
            dataset_type="dsc-perfusion",
            body=body,
            metrics={k: v for k, v in config.metrics.items() if k.endswith(("mae", "dice_gt6"))},
            tags=["perfusion", "dsc-mri", "tmax"],
        )
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # The training defaults depend on the architecture: read --model first.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--model", default=PerfusionOptions.model, choices=list(ARCHITECTURES))
    model = first.parse_known_args(argv)[0].model
    parser = train_parser(__doc__.splitlines()[0], ARCHITECTURES[model].defaults)
    add_dataclass_args(parser, PerfusionOptions, PerfusionOptions(model=model))
    args = parser.parse_args(argv)
    opts, cfg = dataclass_from_args(PerfusionOptions, args), dataclass_from_args(TrainConfig, args)
    report = train(args.data, args.out, opts, cfg, args.data_note)
    finish(args.out, args, report)
    return report
