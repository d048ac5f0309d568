"""The per-batch cosine schedule that lets one- or two-epoch CPU fine-tunes anneal."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from workbench.training import TrainConfig, fit


def test_cosine_step_anneals_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(40, 4)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    seen: list[float] = []
    step = torch.optim.SGD.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    cfg = TrainConfig(
        epochs=2, batch_size=8, lr=0.1, optimizer="sgd", scheduler="cosine_step", progress=False
    )
    fit(torch.nn.Linear(4, 2), data, data, torch.nn.functional.cross_entropy, cfg)
    steps = 2 * 5
    expected = [0.05 * (1 + math.cos(math.pi * k / steps)) for k in range(steps)]
    assert seen == pytest.approx(expected)
