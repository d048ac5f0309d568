"""Ensembles of classifiers and their vote (the tumour-detection study's majority vote)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from workbench.errors import InputError
from workbench.models.registry import build_model, register_model

VOTING = ("hard", "soft")


class Ensemble(nn.Module):
    """Runs every member on the same input; ``forward`` returns logits stacked ``(B, M, C)``.

    Members stay separate modules (``members[i]``) so each can be trained, explained and reported
    on its own; combining happens in :func:`ensemble_vote`.
    """

    def __init__(self, members: list[nn.Module], voting: str = "hard") -> None:
        super().__init__()
        if voting not in VOTING:
            raise InputError(f"unknown voting {voting!r}; use one of {VOTING}.")
        self.members = nn.ModuleList(members)
        self.voting = voting

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([member(x) for member in self.members], dim=1)


@register_model("ensemble")
def build_ensemble(members: list[Mapping[str, Any]], voting: str = "hard") -> Ensemble:
    """An :class:`Ensemble` of model specs (each ``{"name": ..., "args": ...}``)."""
    if not members:
        raise InputError("an ensemble needs at least one member spec.")
    return Ensemble([build_model(spec) for spec in members], voting)


def ensemble_vote(logits: Tensor, voting: str = "hard") -> tuple[Tensor, Tensor]:
    """Combine member logits ``(B, M, C)`` into class probabilities ``(B, C)`` and votes ``(B, M)``.

    ``votes`` are each member's argmax. ``soft``: the mean of the members' softmax. ``hard``: a
    majority vote, as a distribution: each member's vote counts one and the members' mean
    probability counts as one fractional extra vote, divided by ``M + 1``. The extra vote is
    below one, so it only decides ties (toward the more confident side), and the result sums to
    one with its argmax on the majority.
    """
    if voting not in VOTING:
        raise InputError(f"unknown voting {voting!r}; use one of {VOTING}.")
    probs = logits.softmax(dim=-1)
    mean = probs.mean(dim=1)
    votes = probs.argmax(dim=-1)
    if voting == "soft":
        return mean, votes
    counts = nn.functional.one_hot(votes, logits.shape[-1]).sum(dim=1).to(mean.dtype)
    return (counts + mean) / (logits.shape[1] + 1), votes
