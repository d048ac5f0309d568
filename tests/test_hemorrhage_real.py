"""Haemorrhage on real head CT (``../shared/data``): the RSNA PNG sample and the two input routes
(a DICOM in Hounsfield units, a brain-window picture) that must reach the model the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from workbench.ct import WINDOWS, apply_window, read_ct
from workbench.data.rsna import scan_rsna
from workbench.errors import InputError
from workbench.recipes.hemorrhage import PRESETS, train
from workbench.transforms.ct import CTPreprocess, check_picture_windows, window_tensor

BRAIN = CTPreprocess(size=(256, 256), windows=("brain", "brain", "brain"))


@pytest.fixture(scope="module")
def rsna(shared_data: Path) -> Path:
    return shared_data / "datasets" / "rsna_ich_sample"


@pytest.fixture(scope="module")
def head_ct(shared_data: Path) -> Path:
    return shared_data / "dicom" / "DICOMSamples" / "CT_Explicit_Little.dcm"


def test_the_png_layout_is_read_as_it_is(rsna: Path) -> None:
    index = scan_rsna(rsna)
    assert len(index.ids) == 1902 and {p.suffix for p in index.paths} == {".png"}
    assert int(index.targets[:, 0].sum()) == 602  # 'any', as the data's README counts
    assert [int(n) for n in index.targets[:, 1:].sum(axis=0)] == [18, 206, 135, 198, 266]
    assert all(p.stem == i for p, i in zip(index.paths, index.ids, strict=True))


def test_a_brain_window_png_and_its_dicom_reach_the_model_alike(
    head_ct: Path, tmp_path: Path
) -> None:
    dicom = read_ct(head_ct)
    picture = np.rint(apply_window(dicom.pixels, WINDOWS["brain"]) * 255).astype(np.uint8)
    png = tmp_path / "slice.png"
    PIL.Image.fromarray(picture).save(png)
    from_png = read_ct(png)
    assert from_png.modality == "CT" and from_png.pixels.shape == dicom.pixels.shape
    a, b = window_tensor(dicom.pixels, BRAIN), window_tensor(from_png.pixels, BRAIN)
    assert float((a - b).abs().max()) <= 1 / 255 + 1e-4  # 8-bit rounding, nothing else
    # Inside the window the picture maps back to the HU it shows.
    inside = (dicom.pixels > 5) & (dicom.pixels < 75)
    assert np.abs(from_png.pixels[inside] - dicom.pixels[inside]).max() <= 80 / 255 / 2 + 1e-3


def test_pictures_only_feed_a_brain_window_model(tmp_path: Path) -> None:
    check_picture_windows(BRAIN)  # fine
    with pytest.raises(InputError, match="give the DICOM files"):
        check_picture_windows(CTPreprocess())  # the study's three windows need HU
    colour = tmp_path / "photo.png"
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 0] = 200  # red: no CT slice is coloured
    PIL.Image.fromarray(rgb).save(colour)
    with pytest.raises(InputError, match=r"photo\.png: a colour picture is not a CT slice"):
        read_ct(colour)


def test_small_real_training_beats_chance_on_held_out_slices(rsna: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    opts, cfg = PRESETS["cpu"]
    opts = replace(opts, size=128, max_images=900, val_fraction=0.15, test_fraction=0.25)
    cfg = replace(cfg, epochs=4, batch_size=32, progress=False)
    report = train(rsna, tmp_path / "hem", opts, cfg)
    run = report["runs"]["efficientnet_lite0"]
    assert run["per_label"]["any"]["auc"] > 0.6, run["per_label"]["any"]
    config = json.loads((tmp_path / "hem" / "config.json").read_text())
    assert config["preprocess"]["windows"] == ["brain", "brain", "brain"]
    card = (tmp_path / "hem" / "README.md").read_text()
    assert "PNG/JPEG" in card and "no patient IDs" in card.replace("\n", " ")


def test_the_shipped_model_separates_held_out_bleeds(rsna: Path) -> None:
    """The shipped model on the slices its split.json held out: AUC(any) well above chance, and
    'unsure' on only a minority of them."""
    from sklearn.metrics import roc_auc_score

    from workbench.tasks.hemorrhage import assess
    from workbench.weights import load_folder, resolve

    folder, source = resolve("hemorrhage")
    held = set(json.loads((Path(folder) / "split.json").read_text())["test"])
    index = scan_rsna(rsna)
    test = index.subset([i for i, image in enumerate(index.ids) if image in held])
    probs, verdicts = assess(load_folder(folder, source), [read_ct(p) for p in test.paths])
    assert len(test.ids) == len(held)
    assert roc_auc_score(test.targets[:, 0], probs[:, 0]) > 0.85
    assert np.mean([v["unsure"] for v in verdicts]) < 0.3
