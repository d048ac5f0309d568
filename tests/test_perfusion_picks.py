"""Picking the AIF by clicking in the Perfusion tab: which voxel a click lands on, and the maps the
picked voxels give. The tab's callbacks are called as Gradio calls them, without a server."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import nibabel as nib
import numpy as np
import pytest

from workbench.phantom.perfusion import DscSpec, simulate_dsc
from workbench.render.perfusion import pick_picture, voxel_at
from workbench.ui.perfusion import analyse, clear_picks, pick, recompute

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "perfusion_phantom.zip"


@pytest.fixture(autouse=True)
def gradio_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The downloads go to this test's folder, not the machine's Gradio cache."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory):
    """A simulated stroke patient with arteries in the brain mask, as an uploaded 4D NIfTI, and
    the tab's first analysis of it (automatic AIF)."""
    patient = simulate_dsc(np.random.default_rng(3), DscSpec())
    series = patient.series()
    image = series.to_nifti(patient.signal)
    image.header.set_zooms((*image.header.get_zooms()[:3], series.tr))
    path = tmp_path_factory.mktemp("picks") / "dsc.nii.gz"
    nib.save(image, path)
    study = analyse(str(path), "osvd")[0]
    return patient, path, study


def click(study, picks: tuple, voxel) -> tuple:
    """``pick`` as a click on the middle of ``voxel``'s square of the picture reaches it."""
    z, row, col = (int(v) for v in voxel)
    plane = study.maps.mask.shape[1:]
    factor = pick_picture(study.drop[z], study.maps.mask[z], np.zeros(plane, bool)).shape[0]
    factor //= plane[0]
    at = gr.SelectData(None, {"index": [col * factor + factor // 2, row * factor], "value": None})
    return pick(study, picks, z + 1, at)


@pytest.mark.parametrize("plane", [(64, 64), (50, 37), (300, 260)])
def test_a_click_on_a_drawn_pick_maps_back_to_its_voxel(plane: tuple[int, int]) -> None:
    drop = np.random.default_rng(0).uniform(0, 1, plane)
    mask = np.ones(plane, bool)
    bare = pick_picture(drop, mask, np.zeros(plane, bool))
    for row, col in [(0, 0), (plane[0] - 1, plane[1] - 1), (plane[0] // 3, plane[1] // 2)]:
        picked = np.zeros(plane, bool)
        picked[row, col] = True
        marked = np.argwhere((pick_picture(drop, mask, picked) != bare).any(axis=-1))
        assert len(marked) > 0
        assert {voxel_at((x, y), plane) for y, x in marked} == {(row, col)}
    height, width = bare.shape[:2]
    for outside in [(width, 0), (0, height), (-1, 0)]:
        assert voxel_at(outside, plane) is None


def test_picked_arteries_give_the_maps_of_the_same_region_given_as_nifti(phantom, tmp_path):
    patient, path, study = phantom
    arteries = np.argwhere(patient.arteries & study.maps.mask)
    assert len(arteries) >= 5
    picks: tuple = ()
    for voxel in arteries:
        picks, _picture = click(study, picks, voxel)
    assert picks == tuple(tuple(v) for v in arteries.tolist())

    picked, _, _, _, *_, summary, files = recompute(str(path), "osvd", study, picks, 3)
    assert summary["aif_source"] == "given region" and summary["aif_voxels"] == len(arteries)
    assert summary["aif_check"]["arterial"]
    aif_mask = next(f for f in files if f.endswith("aif_mask.nii.gz"))
    written = np.transpose(np.asarray(nib.load(aif_mask).dataobj), (2, 1, 0))
    np.testing.assert_array_equal(np.argwhere(written), arteries)  # the download is the picks

    region = tmp_path / "arteries.nii.gz"
    nib.save(
        patient.series().to_nifti((patient.arteries & study.maps.mask).astype(np.uint8)), region
    )
    given = analyse(str(path), "osvd", str(region))[0]
    for name in ("tmax", "cbf", "cbv", "mtt", "mask", "aif", "aif_voxels"):
        np.testing.assert_array_equal(getattr(picked.maps, name), getattr(given.maps, name))


def test_picking_tissue_warns_that_the_aif_is_not_arterial(phantom) -> None:
    patient, path, study = phantom
    tissue = np.argwhere(patient.tissue & ~patient.territory & study.maps.mask)[:9]
    picks: tuple = ()
    for voxel in tissue:
        picks, _picture = click(study, picks, voxel)
    with pytest.warns(UserWarning, match="does not look arterial"):  # gr.Warning, off the server
        *_, summary, _files = recompute(str(path), "osvd", study, picks, 3)
    assert not summary["aif_check"]["arterial"]


def test_clicks_toggle_and_mistakes_get_a_one_line_reason(phantom) -> None:
    _, path, study = phantom
    voxel = np.argwhere(study.maps.mask)[0]
    picks, _ = click(study, (), voxel)
    assert picks == (tuple(voxel.tolist()),)
    assert click(study, picks, voxel)[0] == ()  # a second click drops it
    assert clear_picks(study, 1)[0] == ()
    # slips leave the picks and the maps shown as they were (gr.skip), with a warning
    outside = np.argwhere(~study.maps.mask)[0]
    with pytest.warns(UserWarning, match="outside the brain mask"):
        assert click(study, picks, outside) == gr.skip()
    with pytest.warns(UserWarning, match="no voxels picked"):
        assert recompute(str(path), "osvd", study, (), 1) == gr.skip()
    with pytest.warns(UserWarning, match="the picks were made on dsc.nii.gz, not"):
        assert recompute(str(EXAMPLE), "osvd", study, picks, 1) == gr.skip()
    with pytest.raises(gr.Error, match="analyse a series first"):
        recompute(str(path), "osvd", None, picks, 1)
