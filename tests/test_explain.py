"""Grad-CAM looks where the evidence is, finds its layer from the model's structure, and leaves
the model as it found it."""

import numpy as np
import pytest
import torch
from torch import nn

from workbench.explain import find_target_layer, gradcam
from workbench.models import build_model

SIZE = 32
SQUARE = 6


def square_images(n: int, rng: np.random.Generator, side: str | None = None):
    """Noisy images; label 1 ones hold a bright square (in the ``side`` half when given)."""
    x = rng.normal(0.0, 0.1, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = rng.integers(0, 2, n) if side is None else np.ones(n, int)
    for i in np.flatnonzero(y):
        half = side or ("left" if rng.random() < 0.5 else "right")
        col = rng.integers(1, SIZE // 2 - SQUARE) + (0 if half == "left" else SIZE // 2)
        row = rng.integers(1, SIZE - SQUARE - 1)
        x[i, 0, row : row + SQUARE, col : col + SQUARE] += 1.0
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.fixture(scope="module")
def square_detector():
    """A small CNN taught to spot the square (no feature_info: the forward-hook fallback)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        x, y = square_images(32, rng)
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    x, y = square_images(64, rng)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95, f"the detector did not learn (held-out accuracy {accuracy:.2f})"
    optimiser.zero_grad()  # drop the last step's gradients
    return model.eval()


@pytest.mark.parametrize("side", ["left", "right"])
def test_cam_mass_lies_on_the_side_of_the_square(square_detector, side):
    rng = np.random.default_rng(1 if side == "left" else 2)
    for x in square_images(3, rng, side)[0]:
        with torch.no_grad():  # as in the app: gradcam turns gradients on by itself
            heat = gradcam(square_detector, x[None], target=1)
        assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
        assert heat.min() >= 0.0 and heat.max() <= 1.0
        left, right = heat[:, : SIZE // 2].sum(), heat[:, SIZE // 2 :].sum()
        here, there = (left, right) if side == "left" else (right, left)
        assert here > 3 * there
        # the peak sits on the square (found from the image itself)
        peak = np.unravel_index(heat.argmax(), heat.shape)
        assert x[0][peak].item() > 0.5


def test_fallback_picks_the_last_spatial_feature_map(square_detector):
    assert find_target_layer(square_detector) is square_detector[3]  # ReLU after conv 2


def test_gradcam_leaves_the_model_untouched(square_detector):
    model = square_detector
    model[0].weight.requires_grad_(False)  # a partly frozen model in training
    model.train()
    model[2].eval()
    model[2].weight.grad = torch.full_like(model[2].weight, 0.5)  # a gradient mid-training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradcam(model, torch.zeros(1, 1, SIZE, SIZE), target=1)
    try:
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert model.training and model[1].training and not model[2].training
        assert [p.requires_grad for p in model.parameters()] == [False] + [True] * 5
        assert torch.equal(model[2].weight.grad, torch.full_like(model[2].weight, 0.5))
        assert all(p.grad is None for p in model.parameters() if p is not model[2].weight)
    finally:
        model[0].weight.requires_grad_(True)
        model[2].weight.grad = None
        model.eval()


@pytest.mark.parametrize(
    ("backbone", "layer"),
    [("resnet18", "layer4"), ("efficientnet_lite0", "blocks.6"), ("inception_v3", "Mixed_7c")],
)
def test_target_layer_comes_from_timm_feature_info(backbone, layer):
    model = build_model(
        {"name": "timm_classifier", "args": {"backbone": backbone, "num_classes": 3}}
    )
    assert find_target_layer(model) is model.get_submodule(layer)


def test_gradcam_on_a_timm_classifier_under_no_grad():
    torch.manual_seed(0)
    model = build_model(
        {"name": "timm_classifier", "args": {"backbone": "resnet18", "num_classes": 3}}
    ).eval()
    with torch.no_grad():
        heat = gradcam(model, torch.randn(1, 3, 64, 48), target=2)
    assert heat.shape == (64, 48) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert not model.training
