"""Temperature scaling and the reliability measure behind the classifier cards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold

from workbench.calibration import cross_fitted, fit_temperature, reliability, scale


def sampled(temperature: float, n: int = 6000, classes: int = 4) -> tuple[torch.Tensor, np.ndarray]:
    """Logits and labels drawn from ``softmax(logits / temperature)``: a model whose logits
    are exactly ``temperature`` times too large."""
    gen = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(n, classes, generator=gen)
    labels = torch.multinomial((logits / temperature).softmax(-1), 1, generator=gen)[:, 0]
    return logits, labels.numpy()


@pytest.mark.parametrize("true_t", [0.5, 2.0])
def test_fit_recovers_the_temperature_labels_were_drawn_with(true_t: float) -> None:
    logits, labels = sampled(true_t)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.08)


def test_logits_and_log_softmax_give_the_same_temperature() -> None:
    logits, labels = sampled(2.0)
    from_logits = fit_temperature(logits, labels)
    assert fit_temperature(logits.log_softmax(-1), labels) == pytest.approx(from_logits, rel=1e-4)


def test_scaling_keeps_every_prediction_and_sharpens_below_one() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    assert torch.allclose(scale(probs, 1.0), probs, atol=1e-6)
    sharper = scale(probs, 0.5)
    assert torch.equal(sharper.argmax(-1), probs.argmax(-1))
    assert torch.all(sharper.max(-1).values > probs.max(-1).values)
    # T = 0.5 squares the probabilities before renormalising
    assert torch.allclose(sharper[0], torch.tensor([25, 9, 4]) / 38.0, atol=1e-6)


def test_expected_calibration_error_by_hand() -> None:
    # confidences 0.9 (right), 0.6 (wrong), 0.8 (right), 0.7 (right); five bins of width 0.2:
    # (0.8, 1]: |1 - 0.9| x 1/4; (0.4, 0.6]: |0 - 0.6| x 1/4; (0.6, 0.8]: |1 - 0.75| x 2/4
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]])
    r = reliability(probs, [0, 1, 0, 1], bins=5)
    assert r.ece == pytest.approx(0.025 + 0.15 + 0.125)
    assert r.share.sum() == pytest.approx(1.0)
    assert list(r.accuracy) == [0.0, 1.0, 1.0]


def test_fitting_lowers_the_calibration_error_of_an_overconfident_model() -> None:
    logits, labels = sampled(3.0)  # logits three times too large: overconfident
    raw = reliability(logits.softmax(-1).numpy(), labels).ece
    t = fit_temperature(logits, labels)
    fixed = reliability((logits / t).softmax(-1).numpy(), labels).ece
    assert raw > 0.1 and fixed < 0.03


def test_cross_fitting_scales_each_half_with_the_other_halfs_temperature() -> None:
    logits, labels = sampled(3.0, n=2000)
    probs = torch.stack([logits.softmax(-1), (logits / 2).softmax(-1)], dim=1)  # two members
    out = cross_fitted(probs, labels)
    # each fold's output, rebuilt from the temperatures fitted on the other fold
    folds = StratifiedKFold(2, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels)
    for fit_idx, held_idx in folds:
        for m in range(2):
            t = fit_temperature(probs[fit_idx, m].log(), labels[fit_idx])
            assert torch.allclose(out[held_idx, m], scale(probs[held_idx, m], t), atol=1e-6)
    # the second member's logits are half as large, so it needs half the temperature
    t0 = fit_temperature(probs[:, 0].log(), labels)
    t1 = fit_temperature(probs[:, 1].log(), labels)
    assert t1 == pytest.approx(t0 / 2, rel=0.02)
    assert reliability(out.mean(1).numpy(), labels).ece < 0.05
