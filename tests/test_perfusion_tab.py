"""The Perfusion tab on the real server: through gradio_client, and in headless Chromium."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from tests.conftest import ARTIFACTS
from workbench.io.series import load_series
from workbench.perfusion.pipeline import perfusion_maps
from workbench.perfusion.signal import clean
from workbench.render import perfusion as figures

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "perfusion_phantom.zip"
SHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="module")
def client(app_url: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_url, verbose=False)


def test_the_example_gives_four_maps_volumes_and_nifti_downloads(client) -> None:
    from gradio_client import handle_file

    assert EXAMPLE.stat().st_size < 2_000_000
    *_, tmax, cbf, cbv, mtt, _aif, headline, summary, files = client.predict(
        handle_file(str(EXAMPLE)), "template", api_name="/perfusion_maps"
    )
    pictures = [np.asarray(PILImage.open(p)) for p in (tmax, cbf, cbv, mtt)]
    assert all(p.shape == pictures[0].shape and p.shape[1] >= 256 for p in pictures)
    assert summary["method"] == "template" and summary["tmax_gt6_ml"] > 10
    assert f"{summary['tmax_gt6_ml']} ml" in headline
    names = sorted(Path(f).name for f in files)
    assert names == ["aif_mask.nii.gz", "cbf.nii.gz", "cbv.nii.gz", "mtt.nii.gz", "tmax.nii.gz"]
    aif_mask = np.asarray(nib.load(next(f for f in files if "aif_mask" in f)).dataobj)
    assert aif_mask.sum() == summary["aif_voxels"]
    image = nib.load(next(f for f in files if f.endswith("tmax.nii.gz")))
    assert image.shape == (64, 64, 6)
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000
    volume = (np.asarray(image.dataobj) > 6).sum() * voxel_ml
    assert summary["tmax_gt6_ml"] == pytest.approx(volume, abs=0.01)
    # the white outline of the Tmax > 6 s region is drawn on the Tmax picture
    assert (pictures[0] == 255).all(axis=-1).sum() > 50
    # the downloaded AIF mask, uploaded back as the AIF region, is used as given
    mask = next(f for f in files if "aif_mask" in f)
    *_, again, _files = client.predict(
        handle_file(str(EXAMPLE)), "template", handle_file(mask), api_name="/perfusion_maps"
    )
    assert again["aif_source"] == "given region" and again["aif_voxels"] == summary["aif_voxels"]
    assert again["tmax_gt6_ml"] == summary["tmax_gt6_ml"]


def test_the_shipped_cnn_reads_tmax_in_the_tab(client) -> None:
    from gradio_client import handle_file

    *_, headline, summary, files = client.predict(
        handle_file(str(EXAMPLE)), "cnn", api_name="/perfusion_maps"
    )
    assert summary["method"] == "cnn" and summary["weights"] == "local: weights/perfusion"
    assert summary["cbf_cbv_mtt_method"] == "template" and "trained CNN" in headline
    tmax = np.asarray(nib.load(next(f for f in files if f.endswith("tmax.nii.gz"))).dataobj)
    # the phantom's territory (truth 7-10 s) is there, normal tissue (truth 0-1.5 s) is not
    assert summary["tmax_gt6_ml"] > 10 and (tmax[tmax != 0] < 3).mean() > 0.5


def test_wrong_uploads_get_a_one_line_reason(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    picture = tmp_path / "slice.png"
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(picture)
    with pytest.raises(Exception, match="upload a zip of the DICOM series"):  # by content
        client.predict(handle_file(str(picture)), "osvd", api_name="/perfusion_maps")
    notes = tmp_path / "series.zip"
    with zipfile.ZipFile(notes, "w") as archive:
        archive.writestr("README.txt", "no images here")
    with pytest.raises(Exception, match="no DICOM images found") as info:
        client.predict(handle_file(str(notes)), "osvd", api_name="/perfusion_maps")
    assert "Traceback" not in str(info.value)


def computed_tab(browser, app_url: str):
    """A page with the Perfusion tab's maps of the example computed."""
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(app_url, wait_until="load", timeout=90_000)
    page.get_by_role("tab", name="Perfusion").click(timeout=90_000)
    page.locator("td, button, .gallery-item").filter(has_text="perfusion_phantom").first.click()
    # the example is in the upload box (its size shown) before the run is asked for: on a busy
    # machine a click that comes sooner runs on an empty box
    page.locator("#perfusion-upload").get_by_text(".zip").first.wait_for(timeout=120_000)
    page.get_by_role("button", name="Compute maps").click()
    page.locator("#perfusion-tmax img").wait_for(state="visible", timeout=240_000)
    page.locator("#perfusion-aif img").wait_for(state="visible", timeout=120_000)
    return page


@pytest.mark.browser
def test_the_tab_in_a_browser(browser, app_url: str) -> None:
    page = computed_tab(browser, app_url)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "perfusion_tab.png"), full_page=True)
    assert page.get_by_text("Tmax > 6 s:").first.is_visible()
    page.close()


@pytest.mark.browser
def test_a_click_in_the_browser_picks_the_voxel_under_it(browser, app_url: str) -> None:
    """The browser reports the click in the picture's own pixels, whatever size it is shown at:
    the picture with the pick drawn must be the one drawn here for the voxel clicked."""
    series = load_series(EXAMPLE)
    maps = perfusion_maps(series)
    z = figures.most_hypoperfused_slice(maps)  # the slice shown first
    drop = figures.bolus_drop(clean(series.data))[z]
    row, col = np.unravel_index(np.argmax(np.where(maps.mask[z], drop, -1)), drop.shape)
    picked = np.zeros(drop.shape, bool)
    picked[row, col] = True
    expected = figures.pick_picture(drop, maps.mask[z], picked)

    page = computed_tab(browser, app_url)
    picture = page.locator("#perfusion-pick img")
    page.wait_for_function(  # loaded: an image still loading has no size to click in
        "() => document.querySelector('#perfusion-pick img')?.naturalWidth > 0", timeout=60_000
    )
    box = picture.bounding_box()
    scale = box["width"] / expected.shape[1]  # shown square: 64×64 voxels
    factor = expected.shape[0] // drop.shape[0]
    picture.click(position={"x": (col + 0.5) * factor * scale, "y": (row + 0.5) * factor * scale})
    page.get_by_text(f"AIF picks: 1 (slice {z + 1})").wait_for(timeout=60_000)
    shown = page.request.get(page.locator("#perfusion-pick img").get_attribute("src")).body()
    np.testing.assert_array_equal(
        np.asarray(PILImage.open(io.BytesIO(shown)).convert("RGB")), expected
    )
    page.get_by_role("button", name="Recompute with picked AIF").click()
    page.get_by_text("given region").first.wait_for(timeout=120_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "perfusion_pick.png"), full_page=True)
    page.close()
