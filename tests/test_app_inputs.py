"""Files as PACS and CD exports name them (no extension) on every tab and in the CLI (issue 18):
the readers decide by content, not by name. Through the real server's REST API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT

EXAMPLES = ROOT / "examples"
SHOTS = ARTIFACTS / "screenshots"


def upload(url: str, path: Path) -> str:
    """Upload one file the way the page does; the server path it was saved to."""
    import httpx

    with path.open("rb") as f:
        answer = httpx.post(url + "gradio_api/upload", files={"files": (path.name, f)}, timeout=60)
    answer.raise_for_status()
    return answer.json()[0]


def call(url: str, api_name: str, *data: object) -> tuple[str, object]:
    """One request through gradio's REST API: ("complete" or "error", its data)."""
    import httpx

    event = httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": list(data)}, timeout=60)
    event.raise_for_status()
    stream = httpx.get(
        f"{url}gradio_api/call/{api_name}/{event.json()['event_id']}", timeout=600
    ).text
    kind = data_line = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind in ("complete", "error"):
            data_line = json.loads(line.removeprefix("data: "))
            break
    return kind, data_line


def file_data(path: str) -> dict:
    """An uploaded file as an input of a REST call."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def extensionless_dicom(tmp_path: Path) -> Path:
    """A CT DICOM named as PACS and CD exports name them: no extension."""
    target = tmp_path / "IM0001"
    shutil.copy(EXAMPLES / "hemorrhage_phantom_subdural.dcm", target)
    return target


@pytest.mark.parametrize(
    ("api_name", "extra"),
    [
        ("tumor_segment", ()),
        ("tumor_detect", ("hard",)),
        ("contrast_classify", ()),
        ("tumor44_classify", ()),
    ],
)
def test_every_slice_tab_reads_dicom_without_extension(
    app_url: str, tmp_path: Path, api_name: str, extra: tuple
) -> None:
    path = upload(app_url, extensionless_dicom(tmp_path))
    kind, answer = call(app_url, api_name, file_data(path), *extra)
    assert kind == "complete", answer


def test_the_haemorrhage_tab_reads_dicom_without_extension(app_url: str, tmp_path: Path) -> None:
    path = upload(app_url, extensionless_dicom(tmp_path))
    kind, answer = call(app_url, "hemorrhage_analyse", [file_data(path)])
    assert kind == "complete", answer
    summary = answer[-2]  # the study summary: the slice was read by its content
    assert summary["slices"] == 1 and "subdural" in summary["probabilities"]


def test_the_perfusion_tab_reads_dicom_without_extension(app_url: str, tmp_path: Path) -> None:
    path = upload(app_url, extensionless_dicom(tmp_path))
    kind, message = call(app_url, "perfusion_maps", file_data(path), "osvd", None)
    # one CT slice is no DSC series: the reader says so, instead of refusing the file's name
    assert kind == "error" and "Invalid file type" not in str(message)
    assert "upload a zip" not in str(message)


def test_the_cli_reads_dicom_without_extension(tmp_path: Path) -> None:
    dicom = str(extensionless_dicom(tmp_path))
    for args in (("inspect", dicom), ("predict", "hemorrhage", dicom)):
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[0])


@pytest.mark.browser
def test_the_page_takes_dicom_without_extension(page, tmp_path: Path) -> None:
    page.get_by_role("tab", name="Haemorrhage").click()
    page.locator("#hemorrhage-upload input[type=file]").set_input_files(
        str(extensionless_dicom(tmp_path))
    )
    page.get_by_role("button", name="Analyse").click()
    page.locator("#hemorrhage-cam img").wait_for(state="visible", timeout=120_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "extensionless_dicom.png"), full_page=True)
    assert page.get_by_text("Invalid file type").count() == 0
