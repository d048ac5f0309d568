"""The workbench is an installable package: the wheel holds ``workbench`` alone with its two
commands, the scripts in ``train/``, ``bench/`` and ``scripts/`` import it without ``sys.path``
edits, and ``python -m workbench.train`` runs every task ``train/`` has."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import ROOT, assert_one_error_line
from workbench.tasks import list_tasks
from workbench.train import trainable

# 300 s as tests/test_cli.py allows: importing torch took over 120 s on the busy 2-core machine.
CAPTURED = {"capture_output": True, "text": True, "timeout": 300}
TASKS = {"contrast", "tumor_detect", "tumor44", "tumor_seg", "hemorrhage", "perfusion"}
# What a checkout holds beyond the sources: caches, runs and the model weights' large files.
NOT_COPIED = shutil.ignore_patterns(
    ".git", "runs", "artifacts", "outputs", "build", "*.egg-info", "__pycache__", ".*cache",
    ".hypothesis", ".gradio", "*.safetensors",
)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """``pip wheel . --no-deps`` of a copy of the checkout (so the build leaves no ``build/``
    in the working tree), offline: no index, setuptools from this environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = shutil.copytree(ROOT, tmp / "src", ignore=NOT_COPIED)
    for folder in ("train", "bench", "scripts", "tests", "weights", "examples"):
        assert (src / folder).is_dir(), f"the copy lacks {folder}/, so the test proves nothing"
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*cmd, "--no-index", "-q", "-w", str(tmp / "dist")], cwd=src, check=True, timeout=600
    )
    (path,) = (tmp / "dist").glob("*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def test_wheel_holds_only_the_workbench_package(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist() if ".dist-info/" not in n}
    assert tops == {"workbench"}
    assert "workbench/train.py" in wheel.namelist()
    assert _dist_info(wheel, "top_level.txt").split() == ["workbench"]


def test_wheel_has_both_commands(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {
        "workbench": "workbench.cli:main",  # python -m workbench
        "workbench-train": "workbench.train:main",  # python -m workbench.train
    }


def test_wheel_requires_what_requirements_txt_lists(wheel: zipfile.ZipFile) -> None:
    """pyproject.toml reads requirements.txt: the wheel's runtime requirements are that list."""
    metadata = _dist_info(wheel, "METADATA")
    required = {
        re.split(r"[<>=!~;\s\[]", r, maxsplit=1)[0].lower()
        for r in re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M)
        if "extra ==" not in r
    }
    listed = {
        re.split(r"[<>=!~;\s\[]", line, maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert required == listed and {"torch", "gradio", "pydicom"} <= required
    assert 'Requires-Dist: pytest>=8; extra == "dev"' in metadata


def test_scripts_edit_no_sys_path() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("train", "bench", "scripts")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file() and "sys.path.insert" in path.read_text(errors="ignore")
    ]
    assert offenders == []


def test_every_train_script_is_a_task_of_the_command() -> None:
    from workbench.recipes.classifier_tasks import CLASSIFIER_TASKS

    scripts = {p.stem for p in (ROOT / "train").glob("*.py")}
    assert set(trainable()) == scripts == TASKS
    for task in scripts:
        assert f'run_task("{task}")' in (ROOT / "train" / f"{task}.py").read_text()
    shared = {s.name for s in list_tasks() if s.train == "workbench.recipes.classifier:main"}
    assert shared == set(CLASSIFIER_TASKS)


def _python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python *args`` started in ``cwd``, its output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=cwd, **CAPTURED)


def _train(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return _python("-m", "workbench.train", *args, cwd=cwd)


def test_train_help_lists_the_tasks() -> None:
    proc = _train("--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: python -m workbench.train" in proc.stdout
    listed = set(re.findall(r"^  (\w+)  ", proc.stdout.split("tasks:")[1], flags=re.M))
    assert listed == TASKS


@pytest.mark.parametrize("args", [("nope", "--data", "x"), ()])
def test_train_without_a_known_task_is_one_line_and_status_2(args: tuple[str, ...]) -> None:
    assert_one_error_line(_train(*args), f"; choose one of {', '.join(trainable())}")


def test_train_script_runs_from_another_folder(tmp_path: Path) -> None:
    """``python train/<task>.py`` finds the installed package wherever it is started from, and
    its flags are the recipe's (the script and ``workbench-train <task>`` share one table)."""
    proc = _python(str(ROOT / "train" / "tumor_seg.py"), "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: tumor_seg.py") and "--preset" in proc.stdout
    assert _train("tumor_seg", "--help", cwd=tmp_path).stdout.startswith(
        "usage: python -m workbench.train tumor_seg"
    )
