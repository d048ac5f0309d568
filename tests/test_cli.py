"""The CLI contract: JSON on success; on bad input one ``error:`` line, exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pattern in lines[0]


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("predict", "no_such_task", "x.png"), "unknown task 'no_such_task'"),
        (("predict", "tumor_seg", "does/not/exist.png"), "no such file"),
        (("predict",), "required"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_usage_mistakes_give_one_line(args: tuple[str, ...], pattern: str) -> None:
    assert_one_error_line(run_cli(*args), pattern)


def test_inspect_a_text_file_gives_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not an image at all\n" * 20)
    proc = run_cli("inspect", str(bad))
    assert_one_error_line(proc, "notes.dcm")


def test_inspect_prints_json_for_an_image(tmp_path: Path) -> None:
    path = tmp_path / "slice.png"
    PILImage.fromarray((np.arange(64 * 48).reshape(64, 48) % 256).astype(np.uint8)).save(path)
    proc = run_cli("inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert "64" in json.dumps(info) and "48" in json.dumps(info)


def test_predict_with_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "slice.png"
    PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(path)
    proc = run_cli("predict", "tumor_seg", str(path), "--weights", str(tmp_path / "none"))
    assert_one_error_line(proc, "not a model folder")


def test_perfusion_on_a_broken_series_gives_one_line(tmp_path: Path) -> None:
    """Issue 18 fault 5: an all-NaN 4D NIfTI printed a 41-line traceback and exit 1."""
    import nibabel as nib

    image = nib.Nifti1Image(np.full((8, 8, 3, 12), np.nan, np.float32), np.eye(4))
    image.header.set_zooms((1.0, 1.0, 1.0, 1.5))
    nib.save(image, tmp_path / "nan.nii.gz")
    proc = run_cli("perfusion", str(tmp_path / "nan.nii.gz"), "--out", str(tmp_path / "out"))
    assert_one_error_line(proc, "NaN or infinite")


EXAMPLES = ROOT / "examples"


def test_inspect_a_zipped_series_describes_each_file() -> None:
    """Issue 18 newcomer's path: inspect reads a zipped series as the haemorrhage tab does."""
    proc = run_cli("inspect", str(EXAMPLES / "hemorrhage_phantom_series.zip"))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "zip" and len(info["files"]) == 24
    assert {f["modality"] for f in info["files"]} == {"CT"}


def test_predict_hemorrhage_on_a_zipped_series_gives_the_study_answer() -> None:
    series = str(EXAMPLES / "hemorrhage_phantom_series.zip")
    proc = run_cli("predict", "hemorrhage", series)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["source"] == "hemorrhage_phantom_series.zip" and answer["slices"] == 24
    assert len(answer["probabilities"]) == 6
    assert {"unsure", "unsure_slices", "reason"} <= set(answer)  # as the tab's study summary
    assert_one_error_line(
        run_cli("predict", "contrast", series),
        "only tumor_seg, hemorrhage and perfusion read a zip",
    )


def test_perfusion_writes_its_summary_to_out_too(tmp_path: Path) -> None:
    out = tmp_path / "maps"
    proc = run_cli("perfusion", str(EXAMPLES / "perfusion_phantom.zip"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text()) == json.loads(proc.stdout)
    names = {p.name for p in out.iterdir()}
    assert names >= {"summary.json", "tmax.nii.gz", "cbf.nii.gz", "aif.png"}
    (tmax,) = out.glob("tmax_slice*.png")  # the picture the Perfusion tab opens on
    picture = np.asarray(PILImage.open(tmax))
    assert picture.ndim == 3 and picture.shape[0] > picture.shape[1]  # the map over its scale
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 20  # colours, not a blank


def test_predict_hemorrhage_study_is_the_max_over_its_slices_in_head_order(tmp_path: Path) -> None:
    """``--study`` answers as the Haemorrhage tab does: several files are one study."""
    with zipfile.ZipFile(EXAMPLES / "hemorrhage_phantom_series.zip") as series:
        names = sorted(n for n in series.namelist() if n.endswith(".dcm"))[:3]
        series.extractall(tmp_path, names)
    files = [str(tmp_path / n) for n in names]
    study = run_cli("predict", "hemorrhage", "--study", *files)
    assert study.returncode == 0, study.stderr
    answer = json.loads(study.stdout)
    slices = answer["per_slice"]
    assert answer["slices"] == len(slices) == 3
    z = [s["z_mm"] for s in slices]
    assert z == sorted(z, reverse=True)  # top of the head first
    single = [
        json.loads(line)
        for line in run_cli("predict", "hemorrhage", *files).stdout.split("\n")
        if line
    ]
    by_file = {Path(a["source"]).name: a["probabilities"] for a in single}
    for label, p in answer["probabilities"].items():
        assert p == pytest.approx(max(a[label] for a in by_file.values()), abs=1e-4)
    assert_one_error_line(run_cli("predict", "contrast", "--study", files[0]), "--study is for")


def test_predict_tumor_detect_then_segment_on_real_slices(shared_data: Path) -> None:
    """``--segment`` answers as the Brain tumour tab does: a tumour verdict is outlined, a
    no-tumour verdict is not segmented. The tumour slice is from a patient the segmentation
    model held out (weights/tumor_seg/split.json)."""
    tumour = "lgg_kaggle_3m/kaggle_3m/TCGA_CS_4943_20000902/TCGA_CS_4943_20000902_17.tif"
    normal = "brain_tumor_mri/Training/notumor/Tr-no_0011.jpg"
    paths = [str(shared_data / "datasets" / name) for name in (tumour, normal)]
    proc = run_cli("predict", "tumor_detect", "--segment", *paths)
    assert proc.returncode == 0, proc.stderr
    found, skipped = (json.loads(line) for line in proc.stdout.splitlines())
    assert found["label"] == "tumor" and found["segmentation"]["tumor_found"]
    assert found["segmentation"]["area_px"] > 1000  # its reference mask has 3,086 pixels
    assert skipped["label"] == "no_tumor" and "skipped" in skipped["segmentation"]["segmentation"]
