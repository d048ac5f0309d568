"""The Brain tumour tab's whole-patient path through the real server: a zipped held-out LGG
patient in, the volume summary, per-slice table and downloads out (the same numbers as the CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(app_url: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def held_out_patient(shared_data: Path, tmp_path_factory) -> Path:
    """The first patient the shipped segmentation model held out (its split.json), zipped as a
    user would zip a kaggle_3m folder."""
    split = json.loads((ROOT / "weights" / "tumor_seg" / "split.json").read_text())
    name = sorted(split["test_patients"])[0]
    folder = shared_data / "datasets" / "lgg_kaggle_3m" / "kaggle_3m" / name
    archive = tmp_path_factory.mktemp("patient") / f"{name}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"{name}/{f.name}")
    return archive


def test_a_zipped_patient_is_segmented_through_the_volume(client, held_out_patient: Path) -> None:
    from gradio_client import handle_file

    slider, view, summary, table, files, about = client.predict(  # the state stays server-side
        handle_file(str(held_out_patient)), "0.94, 0.94, 5", api_name="/tumor_volume"
    )
    n = len(table["data"])
    assert summary["slices"] == n and summary["tumor_found"]
    assert summary["scores"]["dice"] > 0.5  # scored against the zip's own masks
    assert slider["value"] == summary["largest_slice"]  # opens on the largest tumour
    areas = [row[1] for row in table["data"]]
    assert max(areas) == areas[summary["largest_slice"] - 1] and sum(areas) == summary["voxels"]
    assert summary["slices_with_tumor"] == [row[0] for row in table["data"] if row[1]]
    names = sorted(Path(f).name for f in files)
    stem = held_out_patient.stem
    assert names == sorted(
        [f"{stem}_mask.nii.gz", f"{stem}_mask_png.zip", f"{stem}_report.json", f"{stem}_slices.csv"]
    )
    mask = nib.load(next(f for f in files if f.endswith(".nii.gz")))
    assert mask.shape == (256, 256, n) and int(mask.get_fdata().sum()) == summary["voxels"]
    # kaggle_3m tifs carry no spacing: the typed voxel size gives the ml and the NIfTI's grid
    assert mask.header.get_zooms() == pytest.approx((0.94, 0.94, 5))
    assert summary["volume_ml"] == pytest.approx(summary["voxels"] * 0.94 * 0.94 * 5 / 1000, 0.01)
    assert summary["voxel_size"] == "given: 0.94 × 0.94 × 5 mm"
    assert "trained on" in about and Path(view).is_file()

    cli = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "tumor_seg", str(held_out_patient)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr
    line = json.loads(cli.stdout)
    assert line["voxels"] == summary["voxels"] and line["scores"] == summary["scores"]
    assert line["volume_ml"] is None and line["voxel_size"].startswith("unknown")


def test_a_mistyped_voxel_size_gets_the_one_line_error(client, held_out_patient: Path) -> None:
    from gradio_client import handle_file

    with pytest.raises(Exception, match="three sizes in mm") as err:
        client.predict(handle_file(str(held_out_patient)), "0.94 0.94", api_name="/tumor_volume")
    assert "Traceback" not in str(err.value)


def test_a_4d_series_gets_the_one_line_error(client, tmp_path: Path) -> None:
    import numpy as np
    from gradio_client import handle_file

    data = np.zeros((8, 8, 3, 12), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "dsc.nii.gz")
    with pytest.raises(Exception, match="Perfusion tab") as err:
        client.predict(handle_file(str(tmp_path / "dsc.nii.gz")), "", api_name="/tumor_volume")
    assert "Traceback" not in str(err.value)
