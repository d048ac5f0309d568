"""Grad-CAM heat maps through pytorch-grad-cam, with the target layer read from the model.

The layer to explain is the deepest spatial feature map, found from the model's own structure:
timm's ``feature_info`` names it for every timm backbone; any other network falls back to the
last module that produces a spatial 4D output on a forward pass. No per-architecture table.

The app runs under ``torch.no_grad``; Grad-CAM needs gradients, so they are enabled only inside
:func:`gradcam`, only with respect to the input and activations (never parameters), and the
model leaves exactly as it came: same modes, same ``requires_grad`` flags, same ``.grad``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import Tensor, nn

from workbench.models import Ensemble

PROBE_SIZE = 224  # input side for the fallback probe when no example input is given


def find_target_layer(model: nn.Module, example: Tensor | None = None) -> nn.Module:
    """The module whose activations Grad-CAM should use: the last spatial feature map.

    For timm models that is ``feature_info[-1]``; otherwise the last module (in execution order)
    whose output is ``(B, C, H, W)`` with ``H × W > 1``, seen on ``example`` (or on a zero image
    of ``PROBE_SIZE`` with the first convolution's channels). For an ensemble, pass one member.
    """
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info:
        return model.get_submodule(info[-1]["module"])
    if example is None:
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        example = torch.zeros(1, first_conv.in_channels, PROBE_SIZE, PROBE_SIZE)
    spatial: list[nn.Module] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and output.ndim == 4 and output.shape[-2:].numel() > 1:
            spatial.append(module)

    hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with _untouched(model), torch.no_grad():
            model(example.to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    if not spatial:
        raise ValueError(f"{type(model).__name__} has no spatial feature map for Grad-CAM")
    return spatial[-1]


def gradcam(
    model: nn.Module, x: Tensor, target: int, target_layer: nn.Module | None = None
) -> np.ndarray:
    """Grad-CAM of class ``target`` for one image ``x`` ``(1, C, H, W)``.

    Returns an ``(H, W)`` float32 map in [0, 1] (pytorch-grad-cam's ReLU, upsampling and min-max
    scaling), high where evidence for ``target`` lies.
    """
    if isinstance(model, Ensemble):
        raise TypeError("Grad-CAM explains one classifier: pass model.members[i], not an ensemble")
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"gradcam takes one image (1, C, H, W), got {tuple(x.shape)}")
    layer = target_layer if target_layer is not None else find_target_layer(model, x)
    with (
        _untouched(model),
        torch.enable_grad(),
        GradCAM(model=model, target_layers=[layer]) as cam,
    ):
        # an input that requires grad keeps the graph alive while no parameter does
        x = x.detach().clone().requires_grad_(True)
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
    return heat[0].astype(np.float32)


@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside; every mode, flag and ``.grad`` restored."""
    modes = [(module, module.training) for module in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    model.eval()
    for p, _, _ in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
