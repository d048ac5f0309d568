"""Model factories by name: ``config.json``'s ``model`` entry is all it takes to rebuild a model.

A factory is a plain function registered with :func:`register_model`; its keyword arguments are
the ``args`` of the spec. Keeping architectures as data (not if-chains) lets a model folder, a
training script and the Hub agree on one description of a network.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from workbench.errors import InputError

F = TypeVar("F", bound=Callable[..., nn.Module])

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Register a factory under ``name`` (the ``"name"`` of a model spec)."""

    def decorator(factory: F) -> F:
        if name in MODELS:
            raise ValueError(f"model factory {name!r} is already registered")
        MODELS[name] = factory
        return factory

    return decorator


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """Build ``{"name": <factory>, "args": {...}}``: a model folder's ``config["model"]``."""
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if name not in MODELS:
        raise InputError(f"unknown model {name!r} in the model spec; use one of {sorted(MODELS)}.")
    args = dict(spec.get("args") or {})
    factory = MODELS[name]
    try:  # check the arguments up front so a bad config names the culprit, not a deep TypeError
        inspect.signature(factory).bind(**args)
    except TypeError as err:
        raise InputError(f"bad arguments for model {name!r}: {err}; fix the model spec.") from err
    return factory(**args)
