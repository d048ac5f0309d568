"""Model folders: save → resolve (local, Hub cache offline) → load, and the Hub upload call."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from huggingface_hub.utils import filter_repo_objects

from workbench import weights
from workbench.errors import WeightsNotFoundError
from workbench.models import build_model

SPEC = {
    "name": "timm_classifier",
    "args": {"backbone": "test_efficientnet", "num_classes": 2, "pretrained": False},
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(SPEC)
    config = {
        "task": "demo",
        "title": "demo",
        "model": SPEC,
        "labels": ["a", "b"],
        "preprocess": {},
    }
    return weights.save_pretrained(model, config, tmp_path / "demo", card="# demo card\n")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """A Hub cache laid out as huggingface_hub writes it, holding ``org/demo`` at COMMIT."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--demo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WORKBENCH_WEIGHTS_DIR", str(tmp_path / "no-local-weights"))
    return cache


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_folder_holds_exactly_the_hub_files(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(weights.FOLDER_FILES)
    assert json.loads((folder / "config.json").read_text())["labels"] == ["a", "b"]


def test_load_from_a_directory_restores_the_weights(folder: Path) -> None:
    torch.manual_seed(0)
    original = build_model(SPEC)
    bundle = weights.load_folder(folder, "test", torch.device("cpu"))
    assert _same_weights(original, bundle.model)
    assert bundle.labels == ["a", "b"] and bundle.card.startswith("# demo card")
    assert not bundle.model.training


def test_local_weights_dir_wins(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An overridden weights folder is named as it is, not as the project's ``weights/``."""
    monkeypatch.setenv("WORKBENCH_WEIGHTS_DIR", str(folder.parent))
    path, source = weights.resolve("demo")
    assert path == folder and source == f"local: {folder}"


def test_project_weights_are_named_relative_to_the_project() -> None:
    path, source = weights.resolve("tumor_seg")
    assert source == "local: weights/tumor_seg" and path.name == "tumor_seg"


def test_hub_repo_resolves_from_the_cache_offline(hub_cache: Path) -> None:
    path, source = weights.resolve("org/demo", local_files_only=True)
    assert path == hub_cache / "models--org--demo" / "snapshots" / COMMIT
    assert source == "hub: org/demo@main"
    assert weights.load_folder(path, source).labels == ["a", "b"]


def test_task_name_maps_to_hub_repo_through_env(hub_cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("WORKBENCH_DEMO_REPO", "org/demo")
    monkeypatch.setenv("WORKBENCH_DEMO_REVISION", COMMIT)
    path, source = weights.resolve("demo")
    assert path.name == COMMIT and source == f"hub: org/demo@{COMMIT}"


def test_missing_weights_say_how_to_train(hub_cache: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"python train/nothing\.py"):
        weights.resolve("nothing")
    with pytest.raises(WeightsNotFoundError, match="org/absent"):
        weights.resolve("org/absent", local_files_only=True)


def test_push_to_hub_uploads_the_model_folder(folder: Path, monkeypatch) -> None:
    """The card's pictures, the report and the split go up with the model; local checkpoints
    do not.
    The fake applies the patterns with huggingface_hub's own filter, as upload_folder does."""
    calls: dict[str, object] = {}
    (folder / "confusion.png").write_bytes(b"png")
    (folder / "report.json").write_text("{}")
    (folder / "split.json").write_text("{}")
    (folder / "runs" / "arch").mkdir(parents=True)
    (folder / "runs" / "arch" / "best.safetensors").write_bytes(b"x")
    (folder / "runs" / "arch" / "curve_loss.png").write_bytes(b"png")

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private, exist_ok, repo_type):
            calls["create"] = (repo_id, private, exist_ok, repo_type)

        def upload_folder(self, repo_id, folder_path, allow_patterns, ignore_patterns, **kw):
            files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*")]
            kept = filter_repo_objects(
                files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
            )
            calls["upload"] = (repo_id, sorted(kept))
            return "https://hub/commit/1"

    monkeypatch.setattr(weights, "HfApi", FakeApi)
    assert weights.push_to_hub(folder, "org/demo", private=True) == "https://hub/commit/1"
    assert calls["create"] == ("org/demo", True, True, "model")
    assert calls["upload"] == (
        "org/demo",
        [
            "README.md",
            "config.json",
            "confusion.png",
            "model.safetensors",
            "report.json",
            "split.json",
        ],
    )


def test_push_refuses_a_folder_without_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError):
        weights.push_to_hub(tmp_path, "org/demo")


def test_registry_names_the_hub_repo_and_env_overrides_it(hub_cache: Path, monkeypatch) -> None:
    registry_dir = Path(os.environ["WORKBENCH_WEIGHTS_DIR"])
    registry_dir.mkdir(parents=True)
    (registry_dir / "registry.json").write_text(
        json.dumps({"demo": {"repo": "org/demo", "revision": COMMIT}})
    )
    assert weights.hub_ref("demo") == weights.HubRef("org/demo", COMMIT)
    assert weights.resolve("demo")[1] == f"hub: org/demo@{COMMIT}"
    monkeypatch.setenv("WORKBENCH_DEMO_REPO", "org/elsewhere")
    assert weights.hub_ref("demo").repo_id == "org/elsewhere"


def test_shipped_registry_is_valid() -> None:
    shipped = json.loads(
        (Path(weights.__file__).parents[1] / "weights" / "registry.json").read_text()
    )
    for task, entry in shipped.items():
        if not task.startswith("_"):
            assert set(entry) == {"repo", "revision"}, task


def test_weights_index_agrees_with_the_cards() -> None:
    """``weights/README.md`` is what the cards say now (rerun scripts/weights_index.py if not)."""
    from workbench.cards import render_index

    root = Path(weights.__file__).resolve().parents[1] / "weights"
    index = (root / "README.md").read_text()
    assert index == render_index(root)
    assert index.count("](") == len(list(root.glob("*/config.json")))


def test_a_model_first_loaded_in_inference_mode_still_explains(folder: Path) -> None:
    """The MR classifiers load the CT model from inside their inference-mode pass (its head-CT
    check); Grad-CAM on that shared model must still work afterwards."""
    from workbench.explain import gradcam

    with torch.inference_mode():
        bundle = weights.load_folder(folder, "test", device=torch.device("cpu"))
    assert not any(p.is_inference() for p in bundle.model.parameters())
    heat = gradcam(bundle.model, torch.rand(1, 3, 64, 64), 1)
    assert heat.shape == (64, 64)
