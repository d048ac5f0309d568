"""The shared training loop: it learns, stops early, keeps the best epoch, resumes, reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.recipes.classifier_tasks import ClassifierOptions
from workbench.scripts import add_dataclass_args, train_parser
from workbench.training import TrainConfig, fit


def _blobs(n: int, seed: int) -> TensorDataset:
    """Two Gaussian blobs in 2-D: linearly separable, so a linear model must reach ~100 %."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None] * 2 - 1) * 1.5
    return TensorDataset(x, y)


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {"val_acc": float((out.argmax(1) == y).float().mean())}


CFG = TrainConfig(
    epochs=6, batch_size=16, lr=0.05, monitor="val_acc", mode="max", patience=10, progress=False
)


def test_fit_learns_and_writes_history(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = fit(
        nn.Linear(2, 2),
        _blobs(200, 0),
        _blobs(100, 1),
        nn.CrossEntropyLoss(),
        CFG,
        metrics_fn=_accuracy,
        out_dir=tmp_path,
    )
    assert result.best_score >= 0.95
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert {"train_loss", "val_loss", "val_acc"} <= set(history[0])
    assert (tmp_path / "curve_loss.png").stat().st_size > 1000
    assert (tmp_path / "curve_val_acc.png").is_file()
    assert (tmp_path / "checkpoint" / "optimizer.safetensors").is_file()


def test_early_stopping_keeps_the_best_epoch() -> None:
    """With lr=0 nothing improves after epoch 1, so patience 2 stops at epoch 3."""
    cfg = replace(CFG, lr=0.0, patience=2, epochs=20)
    result = fit(
        nn.Linear(2, 2),
        _blobs(64, 0),
        _blobs(32, 1),
        nn.CrossEntropyLoss(),
        cfg,
        metrics_fn=_accuracy,
    )
    assert len(result.history) == 3 and result.best_epoch == 1


def test_resume_continues_where_it_stopped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    fit(
        nn.Linear(2, 2),
        _blobs(64, 0),
        _blobs(32, 1),
        nn.CrossEntropyLoss(),
        replace(CFG, epochs=2),
        metrics_fn=_accuracy,
        out_dir=tmp_path,
    )
    resumed = fit(
        nn.Linear(2, 2),
        _blobs(64, 0),
        _blobs(32, 1),
        nn.CrossEntropyLoss(),
        replace(CFG, epochs=4, resume=True),
        metrics_fn=_accuracy,
        out_dir=tmp_path,
    )
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 3 and "param_groups" in state


def test_resuming_a_run_that_stopped_early_trains_no_more(tmp_path: Path) -> None:
    """Re-running with --resume after early stopping re-reports; it must not train on."""
    cfg = replace(CFG, lr=0.0, patience=2, epochs=20)
    args = (_blobs(64, 0), _blobs(32, 1), nn.CrossEntropyLoss(), cfg)
    first = fit(nn.Linear(2, 2), *args, metrics_fn=_accuracy, out_dir=tmp_path)
    again = fit(
        nn.Linear(2, 2),
        *args[:3],
        replace(cfg, resume=True),
        metrics_fn=_accuracy,
        out_dir=tmp_path,
    )
    assert len(first.history) == len(again.history) == 3
    assert torch.equal(first.model.weight, again.model.weight)


def _conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


def _bright_or_dark(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) + y[:, None, None, None] * 1.0
    return TensorDataset(x, y)


def test_channels_last_trains_alike_and_hands_back_a_contiguous_model(tmp_path: Path) -> None:
    """The NHWC speed-up must not change what is learnt, and the returned weights must be in the
    default layout (safetensors and the app expect contiguous tensors)."""
    runs = {}
    for flag in (False, True):
        torch.manual_seed(0)
        runs[flag] = fit(
            _conv_net(),
            _bright_or_dark(64, 0),
            _bright_or_dark(32, 1),
            nn.CrossEntropyLoss(),
            replace(CFG, epochs=3, channels_last=flag),
            metrics_fn=_accuracy,
        )
    losses = [[row["val_loss"] for row in runs[f].history] for f in (False, True)]
    assert torch.allclose(torch.tensor(losses[0]), torch.tensor(losses[1]), atol=1e-4)
    assert all(p.is_contiguous() for p in runs[True].model.parameters())


def test_every_flag_is_documented_by_its_field_comment() -> None:
    parser = train_parser("x", replace(TrainConfig(), epochs=3))
    add_dataclass_args(parser, ClassifierOptions, ClassifierOptions())
    text = " ".join(parser.format_help().split())
    assert "--hard-weight HARD_WEIGHT > 0: images the --init-from model gets wrong" in text
    assert "--epochs EPOCHS upper bound; early stopping may end sooner (default: 3)" in text
    undocumented = [
        a.dest for a in parser._actions if a.dest not in {"help", "data", "out"} and not a.help
    ]
    assert not undocumented, undocumented


def test_a_literal_field_is_a_flag_of_its_values_and_the_loop_knows_each_value() -> None:
    """``TrainConfig``'s typed choices are checked on the command line, so a misspelt optimiser
    ends the run at once, and every value they allow is one the loop can build."""
    from typing import get_args, get_type_hints

    from workbench.training import _OPTIMIZERS, _SCHEDULERS

    parser = train_parser("x", TrainConfig())
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--out", "o", "--optimizer", "nadam"])
    args = parser.parse_args(["--data", "d", "--out", "o", "--mode", "max"])
    assert args.mode == "max"
    hints = get_type_hints(TrainConfig)
    assert set(get_args(hints["optimizer"])) == set(_OPTIMIZERS)
    assert set(get_args(hints["scheduler"])) == {"none", *_SCHEDULERS}
    with pytest.raises(ValueError, match="mode='maximum'"):
        TrainConfig(mode="maximum")  # built in code, not parsed: checked all the same


def test_training_over_a_shipped_model_needs_force(tmp_path: Path, monkeypatch, capsys) -> None:
    shipped = tmp_path / "weights" / "contrast"
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text("{}")
    monkeypatch.setenv("WORKBENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    parser = train_parser("x", TrainConfig())
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--data", "d", "--out", str(shipped)])
    assert stop.value.code == 2 and "add --force" in capsys.readouterr().err
    assert parser.parse_args(["--data", "d", "--out", str(shipped), "--force"]).force
    assert parser.parse_args(["--data", "d", "--out", str(tmp_path / "runs" / "contrast")])
