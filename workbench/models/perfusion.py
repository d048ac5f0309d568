"""Perfusion nets: DSC time curves in (time as channels), Tmax in seconds out.

The study's three architectures: one 1×1×1 Conv3D filter over the time axis (a linear read-out
of each voxel's curve), two 1×1×1 Conv3D layers with batch norm (about 1,000 parameters), and a
3D U-Net. All take ``(B, C, Z, Y, X)`` with the resampled curves (and optionally the AIF) as the
``C`` channels and return ``(B, 1, Z, Y, X)``; the 1×1×1 nets see one voxel at a time, so they
train as well on strips of voxels as on whole volumes.

The 3D U-Net is written here rather than taken from MONAI: MONAI is a large dependency for one
small net, and smp (already a dependency) is 2D only.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.models.registry import register_model


@register_model("perfusion_conv1")
def perfusion_conv1(in_channels: int) -> nn.Module:
    """A single 1×1×1 filter: Tmax as a weighted sum of the voxel's time points."""
    return nn.Conv3d(in_channels, 1, kernel_size=1)


@register_model("perfusion_conv2")
def perfusion_conv2(in_channels: int, hidden: int = 16) -> nn.Module:
    """Two 1×1×1 layers with batch norm (40 frames + 40 AIF channels, 16 hidden: 1,329)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, hidden, kernel_size=1, bias=False),
        nn.BatchNorm3d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv3d(hidden, 1, kernel_size=1),
    )


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers += [
            nn.Conv3d(channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class UNet3d(nn.Module):
    """A compact 3D U-Net behind a per-voxel time encoder.

    The 1×1×1 encoder first folds the time axis into ``width`` features (cheap, and it is the
    part the 1×1×1 nets show works); the U-Net then adds spatial context. DSC slabs are thick
    and have few slices (8-24), so it pools in-plane only; its 3×3×3 convolutions still see the
    neighbouring slices. Any in-plane size works: the input is padded to a multiple of
    ``2**depth`` and the output cropped back.
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.depth = depth
        self.time_encoder = nn.Sequential(
            nn.Conv3d(in_channels, width, kernel_size=1, bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(
            _conv_block(a, b) for a, b in zip([width, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool3d((1, 2, 2))
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(b, a, kernel_size=(1, 2, 2), stride=(1, 2, 2))
            for a, b in pairwise(widths)
        )
        self.merge = nn.ModuleList(_conv_block(2 * a, a) for a in widths[:-1])
        self.head = nn.Conv3d(width, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(x, (0, -width % multiple, 0, -height % multiple))
        x = self.time_encoder(x)
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(reversed(self.up), reversed(self.merge), strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :height, :width]


@register_model("perfusion_unet3d")
def perfusion_unet3d(in_channels: int, width: int = 16, depth: int = 2) -> nn.Module:
    return UNet3d(in_channels, width, depth)


@torch.no_grad()
def predict_volume(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """Tmax (Z, Y, X) in seconds from one ``(C, Z, Y, X)`` input volume."""
    model.eval()
    device = next(model.parameters()).device
    return model(torch.from_numpy(inputs)[None].to(device))[0, 0].float().cpu().numpy()
