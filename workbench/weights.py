"""Model folders in the Hugging Face Hub repo format, wherever they live.

A model folder holds ``config.json``, ``model.safetensors`` and ``README.md`` (the model card),
exactly what a Hub model repo holds, so ``weights/<task>/`` and ``org/repo`` are interchangeable.
Weights are only ever read from safetensors: nothing here unpickles.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors.torch import load_file, save_file
from torch import nn

from workbench.errors import WeightsNotFoundError
from workbench.model_config import CONFIG_NAME, ModelConfig
from workbench.models import build_model

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FOLDER_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
# Loaded when present: a classifier's out-of-distribution statistics (workbench.ood).
OPTIONAL_FILES = ("ood.safetensors",)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What a push publishes beyond the loadable files: the report and the pictures the card shows.
# Top level only: training checkpoints under ``runs/`` stay local.
PUBLISH_PATTERNS = (*FOLDER_FILES, *OPTIONAL_FILES, "report.json", "split.json", "*.png")
PUBLISH_IGNORE = ("*/*",)


def weights_dir() -> Path:
    """The project's ``weights/`` folder (``WORKBENCH_WEIGHTS_DIR`` overrides it, e.g. in tests)."""
    default = PROJECT_ROOT / "weights"
    return Path(os.environ.get("WORKBENCH_WEIGHTS_DIR", default))


@dataclass(frozen=True)
class HubRef:
    """Where a task's published weights live on the Hub."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision or 'main'}"


def hub_ref(task: str) -> HubRef | None:
    """The Hub repo the app uses for ``task``: ``WORKBENCH_<TASK>_REPO`` / ``_REVISION`` env
    variables win over ``weights/registry.json``."""
    key = f"WORKBENCH_{task.upper()}"
    entry: dict[str, Any] = {}
    registry = weights_dir() / "registry.json"
    if registry.is_file():
        entry = json.loads(registry.read_text()).get(task, {})
    repo = os.environ.get(f"{key}_REPO", entry.get("repo"))
    if not repo:
        return None
    return HubRef(repo, os.environ.get(f"{key}_REVISION", entry.get("revision")))


@dataclass
class ModelBundle:
    """A loaded model with the folder it came from."""

    model: nn.Module
    config: ModelConfig
    folder: Path
    source: str  # "local: weights/tumor_seg" or "hub: org/repo@rev"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def card(self) -> str:
        card = self.folder / CARD_NAME
        return card.read_text() if card.is_file() else ""


def save_pretrained(
    model: nn.Module,
    config: ModelConfig | dict[str, Any],
    out_dir: Path,
    card: str,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a model folder; ``config.model`` must rebuild ``model`` through ``build_model``.

    A dict ``config`` goes through :class:`ModelConfig` first, so a folder with an unknown or
    missing section is never written.

    ``dtype`` (e.g. ``torch.float16``) stores the floating-point weight matrices and kernels
    smaller; 1-D tensors (biases, normalisation scales and running statistics: a tiny share of
    the bytes, but where float16 rounding shifts outputs most) stay as they are. Loading casts
    back, since ``load_state_dict`` copies into the model's own (float32) tensors.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {
            k: v.to(dtype) if v.is_floating_point() and v.ndim > 1 else v for k, v in state.items()
        }
    save_file(state, str(out_dir / WEIGHTS_NAME), metadata={"format": "pt"})
    config.write(out_dir)
    (out_dir / CARD_NAME).write_text(card)
    return out_dir


def _is_folder(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _how_to_get(task: str) -> str:
    return (
        f"no weights found for '{task}': train them with `python train/{task}.py --out "
        f"weights/{task}` or name a Hub repo with --weights ORG/REPO "
        f"(or WORKBENCH_{task.upper()}_REPO)."
    )


def _looks_like_path(name: str) -> bool:
    """Hub ids are exactly ``org/name``; anything else with a separator is a local path."""
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def _shown(path: Path) -> str:
    """``weights/<task>`` for the project's own folder, the full path for an override."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def resolve(
    name: str | os.PathLike[str],
    *,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> tuple[Path, str]:
    """Find a model folder: a directory path, ``weights/<task>/``, then the Hub (cache first).

    Returns the folder and a human-readable provenance string. Offline (``HF_HUB_OFFLINE=1`` or
    ``local_files_only=True``) only the Hub cache is consulted.
    """
    path = Path(name)
    if _is_folder(path):
        return path, f"local: {path}"
    task = str(name)
    local = weights_dir() / task
    if _is_folder(local):
        return local, f"local: {_shown(local)}"
    if _looks_like_path(task):
        raise WeightsNotFoundError(
            f"{task}: not a model folder (it needs config.json and model.safetensors)."
        )
    ref = hub_ref(task) or (HubRef(task, revision) if "/" in task else None)
    if ref is None:
        raise WeightsNotFoundError(_how_to_get(task))
    ref = HubRef(ref.repo_id, revision or ref.revision)
    attempts = [True] if local_files_only else [True, False]
    for cache_only in attempts:
        try:
            folder = snapshot_download(
                ref.repo_id,
                revision=ref.revision,
                allow_patterns=[*FOLDER_FILES, *OPTIONAL_FILES],
                local_files_only=cache_only,
            )
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
            continue
        if _is_folder(Path(folder)):
            return Path(folder), f"hub: {ref}"
    raise WeightsNotFoundError(
        f"could not get '{ref}' from the Hub cache or the Hub (offline?); " + _how_to_get(task)
    )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_folder(folder: Path, source: str, device: torch.device | None = None) -> ModelBundle:
    """Build the model named in ``config.json`` and load ``model.safetensors`` strictly."""
    config = ModelConfig.read(folder)
    # Never build inside a caller's inference mode (classify() may load the CT model for its
    # head-CT check): inference-mode parameters could not take part in Grad-CAM afterwards.
    with torch.inference_mode(False):
        model = build_model(without_pretrained(config.model.to_dict()))
        model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
    device = device or default_device()
    return ModelBundle(model.to(device).eval(), config, folder, source, device)


def without_pretrained(spec: Any) -> Any:
    """The spec with every ``pretrained`` flag (ensemble members too) off: the trained weights
    follow, so ImageNet ones must never be fetched first."""
    if isinstance(spec, dict):
        return {k: False if k == "pretrained" else without_pretrained(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [without_pretrained(v) for v in spec]
    return spec


_CACHE: dict[tuple[str, str | None], ModelBundle] = {}
_LOCK = threading.Lock()


def load(name: str | os.PathLike[str], *, revision: str | None = None) -> ModelBundle:
    """Resolve and load once per process; the app's tabs share the same instances."""
    key = (str(name), revision)
    with _LOCK:
        if key not in _CACHE:
            folder, source = resolve(name, revision=revision)
            _CACHE[key] = load_folder(folder, source)
        return _CACHE[key]


def push_to_hub(
    folder: Path, repo_id: str, *, private: bool = False, token: str | None = None
) -> str:
    """Create (if needed) ``repo_id`` and upload the model folder with its card's pictures;
    returns the commit URL."""
    if not _is_folder(Path(folder)):
        raise WeightsNotFoundError(
            f"{folder} is not a model folder (config.json + model.safetensors)."
        )
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        allow_patterns=list(PUBLISH_PATTERNS),
        ignore_patterns=list(PUBLISH_IGNORE),
        commit_message=f"Upload {Path(folder).name} from the Brain Imaging Workbench",
    )
    return str(info)
