"""timm image classifiers: any backbone, an optional hidden head, freezing up to a stage."""

from __future__ import annotations

import timm
from torch import nn

from workbench.errors import InputError
from workbench.models.pretrained import timm_pretrained_kwargs
from workbench.models.registry import register_model

STAGE_PREFIX = "stage:"


@register_model("timm_classifier")
def timm_classifier(
    backbone: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    head_hidden: int | None = None,
    dropout: float = 0.0,
    freeze_up_to: str | None = None,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm model with ``num_classes`` logits (the studies' Xception is ``legacy_xception``).

    ``head_hidden`` swaps the linear classifier for dense ``head_hidden`` + ReLU + ``dropout`` +
    linear (the MR-contrast study's "dense 1024 + dropout + softmax"; softmax is applied by the
    caller). ``drop_rate`` is timm's own dropout before the classifier. ``freeze_up_to`` is a
    module name or ``"stage:<i>"``, see :func:`freeze_before`.
    """
    if not timm.is_model(backbone):
        raise InputError(f"unknown timm backbone {backbone!r}; see timm.list_models() for names.")
    model = timm.create_model(
        backbone,
        pretrained=pretrained,
        num_classes=num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        **(timm_pretrained_kwargs(backbone) if pretrained else {}),
    )
    if head_hidden:
        set_hidden_head(model, head_hidden, num_classes, dropout)
    if freeze_up_to:
        freeze_before(model, freeze_up_to)
    return model


def set_hidden_head(model: nn.Module, hidden: int, num_classes: int, dropout: float) -> None:
    """Replace the classifier timm names in ``pretrained_cfg`` with a one-hidden-layer MLP."""
    name = model.pretrained_cfg["classifier"]
    in_features = model.get_submodule(name).in_features
    head = nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )
    model.set_submodule(name, head)


def stage_start(model: nn.Module, index: int) -> str:
    """Name of the first block of feature stage ``index`` (timm ``feature_info`` order).

    A stage starts right after the module that ends the previous one; its first block is the next
    module holding parameters at the depth timm uses for that stage's module ("layer4" in a ResNet,
    "blocks.5" in an EfficientNet, "Mixed_7a" in Inception-v3). Freezing everything registered
    before the stage is the same as freezing before its first block.
    """
    info = [entry["module"] for entry in model.feature_info]
    if index == 0 or not -len(info) < index < len(info):
        raise InputError(
            f"stage {index} has no previous stage to freeze; use 1..{len(info) - 1} "
            f"or -1..-{len(info) - 1}."
        )
    previous, depth = info[index - 1], info[index].count(".")
    seen_previous = False
    for name, module in model.named_modules():
        if name == previous:
            seen_previous = True
        elif (
            seen_previous
            and not name.startswith(previous + ".")
            and name.count(".") == depth
            and any(True for _ in module.parameters())
        ):
            return name
    raise InputError(f"found no module after stage {index - 1} ({previous}) to start training at.")


def modules_before(model: nn.Module, boundary: str) -> list[str]:
    """The largest submodules registered entirely before ``boundary`` (a dotted module name)."""
    names: list[str] = []
    parent = model
    prefix = ""
    for part in boundary.split("."):
        for name, _ in parent.named_children():
            if name == part:
                break
            names.append(prefix + name)
        parent = parent.get_submodule(part)
        prefix += part + "."
    return names


def freeze_before(model: nn.Module, where: str) -> str:
    """Freeze every parameter (and batch-norm statistics) registered before module ``where``.

    ``where`` is a dotted module name or ``"stage:<i>"`` (``"stage:-1"``: the first block of the
    last feature stage, found from timm's ``feature_info``). Batch norms become timm's frozen batch
    norms so training does not move their statistics either (as Keras does for frozen layers).
    Returns the module name training starts at.
    """
    boundary = (
        stage_start(model, int(where.removeprefix(STAGE_PREFIX)))
        if where.startswith(STAGE_PREFIX)
        else where
    )
    try:
        model.get_submodule(boundary)
    except AttributeError as err:
        raise InputError(
            f"the model has no module {boundary!r} to freeze up to; give a module name or "
            f"'stage:-1'."
        ) from err
    timm.utils.freeze(model, modules_before(model, boundary))
    return boundary
