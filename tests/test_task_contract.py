"""One contract, checked for every registered task (as timm's tests run over ``list_models()``).

A task is a :class:`~workbench.tasks.TaskSpec` registered by its module. For each one: the spec
names every part; its weights resolve offline from ``weights/<name>/`` (safetensors); ``predict``
on its first example gives JSON with ``source``, ``model`` and ``weights``; its phantom writer
writes; its training recipe answers ``--help`` and is the one ``workbench-train`` runs; its tab
builds and serves its endpoint; and the CLI answers on every example it ships. A task missing any
of these fails here.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import weights
from workbench.tasks import TaskSpec, get_task, list_tasks
from workbench.tasks.base import EXAMPLES_DIR

ROOT = Path(__file__).resolve().parents[1]
TASKS = [spec.name for spec in list_tasks()]
ANSWER_KEYS = {"source", "model", "weights"}


def missing_parts(spec: TaskSpec) -> list[str]:
    """The parts of a task its spec leaves out or names wrongly."""
    missing = [
        part
        for part in ("title", "phantom", "train", "tab", "tab_title", "endpoint", "examples")
        if not getattr(spec, part)
    ]
    missing += [f"examples/{p.name}" for p in spec.example_paths() if not p.is_file()]
    if not (ROOT / "train" / f"{spec.name}.py").is_file():
        missing.append(f"train/{spec.name}.py")
    return missing


def test_the_registry_holds_every_task_in_tab_order() -> None:
    assert TASKS == ["tumor_detect", "tumor_seg", "contrast", "tumor44", "hemorrhage", "perfusion"]
    assert all(get_task(name).name == name for name in TASKS)


def test_the_app_builds_a_tab_per_task_then_the_others() -> None:
    """Tabs derive from the registry; the visible app keeps its tabs, order and titles."""
    import app

    titles = [title for title, _ in app.tabs()]
    tabs = ["Brain tumour", "MR contrast", "Tumour type", "Haemorrhage", "Perfusion", "Models"]
    assert titles == tabs
    # Tasks that share a tab (detection and segmentation) give it one title.
    by_tab: dict[str, set[str]] = {}
    for spec in list_tasks():
        by_tab.setdefault(spec.tab, set()).add(spec.tab_title)
    assert all(len(names) == 1 for names in by_tab.values()), by_tab


def test_every_example_file_belongs_to_a_task() -> None:
    listed = {name for spec in list_tasks() for name in spec.examples}
    shipped = {p.name for p in EXAMPLES_DIR.iterdir() if p.is_file()}
    assert shipped <= listed, f"examples no task lists: {sorted(shipped - listed)}"


def test_a_spec_without_a_part_breaks_the_contract() -> None:
    spec = get_task("contrast")
    assert missing_parts(spec) == []
    broken = TaskSpec(**{**vars(spec), "examples": (), "endpoint": ""})
    assert missing_parts(broken) == ["endpoint", "examples"]
    lost = TaskSpec(**{**vars(spec), "examples": ("no_such_file.png",)})
    assert missing_parts(lost) == ["examples/no_such_file.png"]
    with pytest.raises(ValueError, match="module:attribute"):
        TaskSpec(**{**vars(spec), "tab": "workbench.ui.contrast.build"})


def test_the_cli_lists_the_tasks_without_loading_torch_or_gradio() -> None:
    """Registering a task is cheap: ``--help`` reads the registry, not the models."""
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['workbench', '--help']\n"
        "try:\n"
        "    runpy.run_module('workbench', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('heavy:', [m for m in ('torch', 'gradio') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "heavy: []" in done.stdout, done.stdout + done.stderr
    for spec in list_tasks():
        assert f"{spec.name}  " in done.stdout and spec.title in done.stdout


@pytest.mark.parametrize("task", TASKS)
def test_spec_names_every_part(task: str) -> None:
    assert missing_parts(get_task(task)) == []


@pytest.mark.parametrize("task", TASKS)
def test_weights_resolve_offline_from_safetensors(task: str) -> None:
    spec = get_task(task)
    registry = json.loads((ROOT / "weights" / "registry.json").read_text())
    assert spec.weights_name in registry, "weights/registry.json has no entry for the task"
    folder, source = weights.resolve(spec.weights_name, local_files_only=True)
    assert folder == ROOT / "weights" / spec.weights_name and source.startswith("local")
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    bundle = weights.load(spec.weights_name)
    assert bundle.config.task == spec.weights_name


@pytest.mark.parametrize("task", TASKS)
def test_predict_on_the_first_example_answers_in_json(task: str) -> None:
    spec = get_task(task)
    example = spec.example_paths()[0]
    answer = spec.predict(weights.load(spec.weights_name), spec.read(example))
    assert set(answer) >= ANSWER_KEYS, sorted(answer)
    assert answer["source"] == example.name
    assert json.loads(json.dumps(answer)) == answer  # plain JSON: no numpy, no NaN tricks


@pytest.mark.parametrize("task", TASKS)
def test_phantom_writer_writes(task: str, tmp_path: Path) -> None:
    from workbench.phantom import write_dataset

    root = write_dataset(task, tmp_path / task, n=1, seed=0)
    assert root.is_dir() and any(p.is_file() for p in root.rglob("*"))


@pytest.mark.parametrize("task", TASKS)
def test_training_recipe_answers_help(task: str) -> None:
    """The spec's recipe answers ``--help``; ``workbench-train <task>`` and ``train/<task>.py``
    run it because they look the task up in the registry (tests/test_packaging.py)."""
    spec = get_task(task)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        spec.train_main()(["--help"])
    assert done.value.code == 0 and "--data" in out.getvalue()


@pytest.mark.parametrize("task", TASKS)
def test_tab_builds_and_serves_the_endpoint(task: str) -> None:
    import gradio as gr

    spec = get_task(task)
    with gr.Blocks() as demo:
        spec.build_tab()
    assert spec.endpoint in {fn.api_name for fn in demo.fns.values()}


@pytest.mark.parametrize("task", TASKS)
def test_cli_answers_on_every_example(task: str) -> None:
    spec = get_task(task)
    examples = [str(p) for p in spec.example_paths()]
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", task, *examples],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["source"] for a in answers] == [p.name for p in spec.example_paths()]
    assert all(set(a) >= ANSWER_KEYS for a in answers)
