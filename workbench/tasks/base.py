"""What every task declares, and the registry it declares it in.

A task module builds one :class:`TaskSpec` and registers it at import::

    SPEC = register(TaskSpec(name="contrast", title="MR contrast", predict=predict, ...))

``workbench.tasks`` imports every task module, so the registry is complete once that package is
imported; :func:`workbench.tasks.list_tasks` and :func:`workbench.tasks.get_task` read it. The
app's tabs, the Models tab, the CLI's task lists, ``phantom``, ``bench/`` and
``scripts/make_examples.py`` all derive from it, and ``tests/test_task_contract.py`` checks every
registered task.

Registering must stay cheap: the CLI's ``--help`` lists the tasks, so a task module imports
torch, nibabel, pydicom and the like inside its functions, never at the top, and refers to the
heavy or gradio parts of a task (phantom writer, training recipe, tab) by ``"module:attribute"``
strings resolved on use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.io import Image
    from workbench.weights import ModelBundle

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

# predict(bundle, read(path)) -> a JSON-able dict with at least "source", "model" and "weights"
Predict = Callable[["ModelBundle", Any], dict[str, Any]]
Reader = Callable[[Path], Any]
PredictFile = Callable[["ModelBundle", Path], dict[str, Any]]


def read_image(path: Path) -> Image:
    """One picture, DICOM or NIfTI slice (:func:`workbench.io.load_image`, imported on use)."""
    from workbench.io import load_image

    return load_image(path)


def resolve_ref(ref: str) -> Any:
    """The object that a ``"package.module:attribute"`` reference names, imported now."""
    module, _, attribute = ref.partition(":")
    if not module or not attribute:
        raise ValueError(f"not a 'module:attribute' reference: {ref!r}")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A task as the CLI, the app, the benches and the tests see it.

    ``predict`` must be cheap enough for a batch of CLI inputs; pictures and Grad-CAM are made by
    the task module's own helpers, called only by the app. Every ``"module:attribute"`` field is
    resolved only when used, so that registering a task imports neither torch nor gradio.
    """

    name: str  # the CLI's and the registry's name; also the default weights name
    title: str  # what the model does, in a few words (CLI help, benches)
    predict: Predict  # (model bundle, what ``read`` returns) -> JSON-able answer
    read: Reader = read_image  # one file -> ``predict``'s input
    # A whole upload that ``read`` does not take (a zipped series, a volume) -> its answer; None:
    # every file goes through ``read`` then ``predict``.
    predict_file: PredictFile | None = None
    zips: bool = False  # the CLI hands this task zipped uploads
    weights: str = ""  # the model folder / Hub entry name; defaults to the task name
    phantom: str  # "module:function" writing a labelled synthetic dataset in the real layout
    train: str  # "module:function" of the training recipe's main(argv)
    train_args: tuple[str, ...] = ()  # leading arguments of ``train``: main(*train_args, argv)
    tab: str  # "module:function" building the app tab that shows this task (gradio)
    tab_title: str  # the tab's title; tasks sharing a tab share its builder and title
    endpoint: str  # the tab's API name (gradio_client ``api_name``) for this task's answer
    examples: tuple[str, ...]  # file names in examples/; the first is the reference input

    def __post_init__(self) -> None:
        for field_name in ("phantom", "train", "tab"):
            ref = getattr(self, field_name)
            if ref and ":" not in ref:
                raise ValueError(
                    f"{self.name}: {field_name} must be 'module:attribute', not {ref!r}"
                )

    @property
    def weights_name(self) -> str:
        return self.weights or self.name

    def answer(self, bundle: ModelBundle, path: Path) -> dict[str, Any]:
        """The task's answer for one file, as ``python -m workbench predict`` prints it."""
        path = Path(path)
        if self.predict_file is not None:
            return self.predict_file(bundle, path)
        return self.predict(bundle, self.read(path))

    def example_paths(self) -> list[Path]:
        return [EXAMPLES_DIR / name for name in self.examples]

    def train_main(self) -> Callable[[list[str] | None], Any]:
        """The training recipe's ``main(argv)`` (what ``train/<task>.py`` runs)."""
        main = resolve_ref(self.train)
        return functools.partial(main, *self.train_args) if self.train_args else main

    def build_tab(self) -> None:
        """Build the task's tab into the enclosing ``gr.Blocks`` (imports gradio)."""
        resolve_ref(self.tab)()


_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to the registry (in import order: the app's tab order) and return it."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"task {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec
