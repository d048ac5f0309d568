"""One training loop for every task.

Hugging Face Accelerate places the model and data on whatever is there (CPU, one GPU, several
GPUs under ``accelerate launch`` / torchrun, mixed precision), so the loop itself stays plain.
Early stopping, the best checkpoint, resume, a tqdm bar, a metrics history JSON and curve PNGs
are the same for all tasks; what differs (loss, metrics) is passed in.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

MetricsFn = Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainConfig:
    """Optimisation recipe; every field is a train-script flag of the same name."""

    epochs: int = 30  # upper bound; early stopping may end sooner
    batch_size: int = 16  # images per optimiser step (per device)
    lr: float = 3e-4  # peak learning rate
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"  # the torch.optim class
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw)
    scheduler: Literal["none", "cosine", "cosine_step"] = "none"  # cosine_step: per batch
    monitor: str = "val_loss"  # any key the metrics function returns, or val_loss
    mode: Literal["min", "max"] = "min"  # whether --monitor improves downwards or upwards
    patience: int = 7  # epochs without a min-delta gain in --monitor before stopping
    min_delta: float = 0.0  # smallest change in --monitor that counts as a gain
    grad_clip: float | None = None  # max gradient norm; unset: no clipping
    num_workers: int = 0  # DataLoader worker processes
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # Accelerate's; fp16/bf16 need a GPU
    channels_last: bool = True  # NHWC convolutions: about 1.8x faster training on CPU (oneDNN)
    seed: int = 0  # weights, shuffling, augmentation and the split
    resume: bool = False  # continue from the run's checkpoint in its work folder
    progress: bool = True  # progress bars on the terminal

    def __post_init__(self) -> None:
        """The ``Literal`` fields are checked here too, not only by the scripts' flags: a recipe
        or a test that builds a config in code gets the same one-line refusal."""
        for name, hint in get_type_hints(type(self)).items():
            if get_origin(hint) is Literal and getattr(self, name) not in get_args(hint):
                raise ValueError(f"{name}={getattr(self, name)!r}; choose one of {get_args(hint)}")


@dataclass
class FitResult:
    """The model with its best weights loaded, and what happened on the way."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = math.nan


_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda p, c: torch.optim.Adam(p, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda p, c: torch.optim.SGD(
        p, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
    ),
}


# name -> (factory(optimizer, config, batches per epoch), stepped after every batch?)
_SCHEDULERS: dict[str, tuple[Callable[..., Any], bool]] = {
    "cosine": (lambda o, c, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, c.epochs), False),
    # a one- or two-epoch CPU fine-tune still anneals when the schedule moves every batch
    "cosine_step": (
        lambda o, c, n: torch.optim.lr_scheduler.CosineAnnealingLR(o, c.epochs * n),
        True,
    ),
}


def improved(score: float, best: float, cfg: TrainConfig) -> bool:
    """Whether ``score`` beats ``best`` in ``cfg.mode``: early stopping and every recipe's choice
    among folds or backbones use this one comparison, so ``--mode`` is honoured everywhere."""
    if math.isnan(best):
        return not math.isnan(score)
    if cfg.mode == "min":
        return score < best - cfg.min_delta
    return score > best + cfg.min_delta


# Optimiser state goes to safetensors + JSON rather than torch.save, so resuming never unpickles.
def _save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(path / "model.safetensors"),
    )
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            name = f"{idx}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    save_file(tensors, str(path / "optimizer.safetensors"))
    meta = {**meta, "param_groups": state["param_groups"], "scalars": scalars}
    (path / "state.json").write_text(json.dumps(meta, indent=1))


def _load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    meta = json.loads((path / "state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in load_file(str(path / "optimizer.safetensors")).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = tensor
    for name, value in meta.pop("scalars").items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return meta


def to_memory_format(model: nn.Module, fmt: torch.memory_format) -> nn.Module:
    """``model`` with its 4D weights in ``fmt``; 3D (5D-weight) models are left as they are,
    since channels-last is a 4D layout."""
    if any(p.dim() == 5 for p in model.parameters()):
        return model
    return model.to(memory_format=fmt)


def _run_epoch(model, loader, loss_fn, opt, accelerator, cfg, bar_desc, batch_sched=None) -> float:
    model.train()
    total, count = 0.0, 0
    bar = tqdm(
        loader,
        desc=bar_desc,
        leave=False,
        disable=not (cfg.progress and accelerator.is_main_process),
    )
    for x, y in bar:
        opt.zero_grad(set_to_none=True)
        with accelerator.autocast():
            loss = loss_fn(model(x), y)
        accelerator.backward(loss)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if batch_sched is not None:
            batch_sched.step()
        total += float(loss.detach()) * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


@torch.no_grad()
def predict_loader(model: nn.Module, loader: DataLoader, accelerator: Accelerator | None = None):
    """All outputs and targets of a loader, gathered across processes, on the CPU."""
    model.eval()
    outs, targets = [], []
    for x, y in loader:
        out = model(x)
        if accelerator is not None:
            out, y = accelerator.gather_for_metrics((out, y))
        outs.append(out.float().cpu())
        targets.append(y.cpu())
    return torch.cat(outs), torch.cat(targets)


def fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset,
    loss_fn: LossFn,
    cfg: TrainConfig,
    *,
    metrics_fn: MetricsFn | None = None,
    out_dir: Path | None = None,
    sampler: Sampler | None = None,
    desc: str = "train",
) -> FitResult:
    """Train with early stopping on ``cfg.monitor``; returns the best epoch's weights.

    ``metrics_fn(outputs, targets)`` sees the whole validation set at once (so it can compute
    per-patient scores or AUCs); ``val_loss`` is always reported.
    """
    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
    if cfg.channels_last:
        model = to_memory_format(model, torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _OPTIMIZERS[cfg.optimizer](params, cfg)
    train_loader = DataLoader(
        train_data,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=len(train_data) > cfg.batch_size,
    )
    val_loader = DataLoader(val_data, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    model, opt, train_loader, val_loader = accelerator.prepare(model, opt, train_loader, val_loader)
    sched, per_batch = None, False
    if cfg.scheduler in _SCHEDULERS:
        factory, per_batch = _SCHEDULERS[cfg.scheduler]
        sched = factory(opt, cfg, len(train_loader))

    result = FitResult(model=model)
    best_state: dict[str, torch.Tensor] | None = None
    stale, start = 0, 0
    ckpt = Path(out_dir) / "checkpoint" if out_dir else None
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    if cfg.resume and ckpt and (ckpt / "state.json").is_file():
        meta = _load_checkpoint(ckpt, accelerator.unwrap_model(model), opt)
        result.history, start = meta["history"], meta["epoch"] + 1
        result.best_epoch, result.best_score, stale = (
            meta["best_epoch"],
            meta["best_score"],
            meta["stale"],
        )
        best_file = Path(out_dir) / "best.safetensors"
        best_state = load_file(str(best_file)) if best_file.is_file() else None
        if sched:
            for _ in range(start * (len(train_loader) if per_batch else 1)):
                sched.step()

    epochs = tqdm(
        range(start, cfg.epochs),
        desc=desc,
        initial=start,
        total=cfg.epochs,
        disable=not (cfg.progress and accelerator.is_main_process),
    )
    for epoch in epochs:
        if stale >= cfg.patience:  # a resumed run that had already stopped early
            break
        train_loss = _run_epoch(
            model,
            train_loader,
            loss_fn,
            opt,
            accelerator,
            cfg,
            f"epoch {epoch + 1}",
            sched if per_batch else None,
        )
        if sched and not per_batch:
            sched.step()
        outputs, targets = predict_loader(model, val_loader, accelerator)
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": float(loss_fn(outputs, targets)),
        }
        if metrics_fn is not None:
            row.update({k: float(v) for k, v in metrics_fn(outputs, targets).items()})
        result.history.append(row)
        score = row[cfg.monitor]
        if improved(score, result.best_score, cfg):
            result.best_epoch, result.best_score, stale = epoch + 1, score, 0
            best_state = copy.deepcopy(accelerator.unwrap_model(model).state_dict())
            if out_dir and accelerator.is_main_process:
                save_file(
                    {k: v.cpu().contiguous() for k, v in best_state.items()},
                    str(Path(out_dir) / "best.safetensors"),
                )
        else:
            stale += 1
        epochs.set_postfix({cfg.monitor: f"{score:.4f}", "best": f"{result.best_score:.4f}"})
        if out_dir and accelerator.is_main_process:
            meta = {
                "epoch": epoch,
                "history": result.history,
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "stale": stale,
                "config": asdict(cfg),
            }
            _save_checkpoint(ckpt, accelerator.unwrap_model(model), opt, meta)
            write_history(result.history, Path(out_dir))
        if stale >= cfg.patience:
            break

    model = to_memory_format(accelerator.unwrap_model(model), torch.contiguous_format)
    if best_state is not None:
        model.load_state_dict(best_state)
    result.model = model.eval()
    return result


def machine_summary() -> str:
    """What a run or a benchmark ran on, for cards and tables: ``x86_64, 2 CPU cores`` plus
    the GPUs when there are any."""
    summary = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        summary += f", {n} × {torch.cuda.get_device_name(0)}"
    return summary


def write_history(history: list[dict[str, float]], out_dir: Path) -> None:
    """``history.json`` and one PNG per metric (train and validation loss share a plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    epochs = [row["epoch"] for row in history]
    names = [k for k in history[0] if k not in {"epoch", "train_loss", "val_loss"}]
    panels = [("loss", ["train_loss", "val_loss"])] + [(n, [n]) for n in names]
    for title, keys in panels:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        for key in keys:
            ax.plot(epochs, [row[key] for row in history], marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / f"curve_{title}.png")
        plt.close(fig)
