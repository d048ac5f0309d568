"""The Haemorrhage tab against a real server: through gradio_client and in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT
from workbench.ui.hemorrhage import SHORT  # the table's abbreviated headers

EXAMPLES = ROOT / "examples"
SERIES = EXAMPLES / "hemorrhage_phantom_series.zip"
SHIPPED = ROOT / "weights" / "hemorrhage" / "model.safetensors"
needs_weights = pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped haemorrhage weights")

LABELS = ["any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


@pytest.fixture(scope="module")
def client(app_url: str):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def analyse(client, *paths: Path) -> dict:
    from gradio_client import handle_file

    out = client.predict([handle_file(str(p)) for p in paths], api_name="/hemorrhage_analyse")
    names = [
        "slice",
        "label",
        "brain",
        "subdural",
        "soft",
        "bars",
        "cam",
        "caption",
        "table",
        "summary",
        "about",
    ]
    return dict(zip(names, out, strict=True))


@needs_weights
def test_series_is_ordered_along_the_head_with_the_most_suspicious_slice_first(client) -> None:
    out = analyse(client, SERIES)
    table, summary = out["table"], out["summary"]
    assert table["headers"][:3] == ["slice", "z (mm)", "file"]
    rows = table["data"]
    assert len(rows) == summary["slices"] == 24
    z = [row[1] for row in rows]
    assert z == sorted(z, reverse=True)  # top of the head first
    any_col = table["headers"].index("any")
    top = max(range(len(rows)), key=lambda i: rows[i][any_col])
    assert summary["most_suspicious_slice"] == rows[top][0] == out["slice"]["value"]
    assert f"slice {rows[top][0]} of 24" in out["caption"]
    # the study answer is the maximum over slices, label by label
    for label in LABELS:
        col = table["headers"].index(SHORT.get(label, label))
        assert summary["probabilities"][label] == pytest.approx(max(r[col] for r in rows), abs=1e-3)
    # the example series holds a subdural and an intraparenchymal haematoma
    assert summary["probabilities"]["any"] > 0.5
    assert {"subdural", "intraparenchymal"} & set(summary["positive"])
    for key in ("brain", "subdural", "soft", "cam"):
        assert Path(out[key]).is_file()
    assert Path(out["bars"]).is_file()  # the bars with the threshold line (tests/test_ui.py)


@needs_weights
def test_real_held_out_slices_bleed_against_normal(client, shared_data: Path) -> None:
    """Two RSNA slices the shipped model held out (its split.json): a subdural bleed and a
    normal slice, uploaded as the brain-window PNGs they are."""
    folder = shared_data / "datasets" / "rsna_ich_sample" / "stage_2_train"
    held = json.loads((SHIPPED.parent / "split.json").read_text())["test"]
    assert {"ID_9a0ccf0da", "ID_210a1b750"} <= set(held)
    bleed = analyse(client, folder / "ID_9a0ccf0da.png")
    normal = analyse(client, folder / "ID_210a1b750.png")["summary"]
    assert bleed["summary"]["probabilities"]["any"] > 0.9 > 0.1 > normal["probabilities"]["any"]
    assert "subdural" in bleed["summary"]["positive"] and not normal["unsure"]
    assert Path(bleed["cam"]).is_file() and Path(bleed["brain"]).is_file()
    # a picture holds the brain window only: the other windows are not drawn from it
    assert (
        bleed["subdural"] is None
        and bleed["soft"] is None
        and "brain window only" in bleed["caption"]
    )


def test_wrong_inputs_get_one_line_errors_or_unsure(client, shared_data: Path) -> None:
    """An MR DICOM is refused by the task (no Hounsfield units); a grey MR picture could be a
    brain-window CT slice by its format, so the model must say it is unsure of it."""
    from gradio_client import handle_file

    mr = shared_data / "dicom" / "pydicom_3.0.2" / "MR_small.dcm"
    with pytest.raises(Exception, match="not a CT slice") as err:
        client.predict([handle_file(str(mr))], api_name="/hemorrhage_analyse")
    assert "Traceback" not in str(err.value)
    out = analyse(client, EXAMPLES / "contrast_phantom_T2.png")
    assert out["summary"]["unsure"] and out["caption"].startswith("**Unsure:")


@needs_weights
def test_cli_predict_prints_json_per_file_and_fails_cleanly(tmp_path: Path) -> None:
    files = [
        EXAMPLES / "hemorrhage_phantom_subdural.dcm",
        EXAMPLES / "hemorrhage_phantom_normal.dcm",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "hemorrhage", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [d["source"] for d in lines] == [f.name for f in files]
    assert all(list(d["probabilities"]) == LABELS for d in lines)
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image")
    run = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "hemorrhage", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 2 and run.stderr.startswith("error: ")
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.browser
@needs_weights
def test_tab_in_chromium(browser, app_url: str) -> None:
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(120_000)
    try:
        page.goto(app_url, wait_until="load")
        page.get_by_role("tab", name="Haemorrhage").click()
        page.get_by_text("hemorrhage_phantom_series.zip").first.click()
        page.locator("#hemorrhage-upload td.filename").first.wait_for()  # the example is in
        page.get_by_role("button", name="Analyse").click()
        page.locator("#hemorrhage-cam img").wait_for(state="visible")
        page.get_by_text("Showing slice").wait_for(state="visible")
        shots = ARTIFACTS / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "hemorrhage_tab.png"), full_page=True)
        assert page.get_by_text("Per slice, in order along the head").is_visible()
        assert page.locator("#hemorrhage-cam img").get_attribute("src")
    finally:
        page.close()
