"""``config.json`` goes through one typed :class:`ModelConfig` both ways (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from workbench.model_config import ModelConfig, ModelSpec
from workbench.weights import load_folder, save_pretrained

SHIPPED = sorted(p.parent.name for p in (ROOT / "weights").glob("*/config.json"))
TINY = {
    "task": "contrast",
    "title": "tiny test classifier",
    "model": {
        "name": "timm_classifier",
        "args": {"backbone": "efficientnet_lite0", "num_classes": 2, "pretrained": False},
    },
    "labels": ["T1", "T2"],
    "preprocess": {"size": [32, 32], "channels": 3},
    "training": {"data": "none"},
}


@pytest.mark.parametrize("task", SHIPPED)
def test_every_shipped_config_round_trips_unchanged(task: str) -> None:
    raw = json.loads((ROOT / "weights" / task / "config.json").read_text())
    config = ModelConfig.from_dict(raw)
    assert config.to_dict() == raw
    assert config.task == task and isinstance(config.model, ModelSpec)


def test_an_unknown_or_missing_section_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown section.*preprocessing"):
        ModelConfig.from_dict({**TINY, "preprocessing": {}})
    with pytest.raises(ValueError, match=r"missing section.*labels"):
        ModelConfig.from_dict({k: v for k, v in TINY.items() if k != "labels"})
    with pytest.raises(ValueError, match=r'"model" must be'):
        ModelConfig.from_dict({**TINY, "model": {"name": "x", "arguments": {}}})


def test_members_are_read_from_the_model_spec() -> None:
    single = ModelSpec("timm_classifier", {"backbone": "efficientnet_lite1"})
    ensemble = ModelSpec("ensemble", {"members": [single.to_dict(), single.to_dict()]})
    assert single.member_names() == ["efficientnet_lite1"]
    assert ensemble.member_names() == ["efficientnet_lite1"] * 2


def test_a_saved_folder_loads_back_the_same_config(tmp_path: Path) -> None:
    from workbench.models import build_model

    model = build_model(TINY["model"])
    save_pretrained(model, TINY, tmp_path / "m", card="card")
    bundle = load_folder(tmp_path / "m", "test", device=torch.device("cpu"))
    assert bundle.config == ModelConfig.from_dict(TINY)
    assert bundle.labels == ["T1", "T2"] and bundle.config.preprocess["size"] == [32, 32]


def test_a_bad_config_writes_no_folder(tmp_path: Path) -> None:
    from workbench.models import build_model

    with pytest.raises(ValueError, match="unknown section"):
        save_pretrained(build_model(TINY["model"]), {**TINY, "extra": 1}, tmp_path / "m", "card")
    assert not (tmp_path / "m").exists()


def test_a_broken_file_names_its_path(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=str(tmp_path / "config.json")):
        ModelConfig.read(tmp_path)
