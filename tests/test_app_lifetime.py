"""The app over its life (issue 18): examples that outlive the upload sweep, uploads usable while
in use, no upload left on disk after SIGTERM / SIGINT or from an earlier run, result files of
their own per request.

Each test drives a real ``python app.py`` on loopback with its own cache folder and a short
upload idle time (``WORKBENCH_UPLOAD_TTL``), so the sweep happens within the test.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT
from tests.conftest import serve as serve_app
from tests.test_app_inputs import call, file_data, upload

EXAMPLES = ROOT / "examples"
SHOTS = ARTIFACTS / "screenshots"
TTL = 20  # s an upload may stay unused in the test app


def serve(cache: Path, ttl: int = TTL, tag: str = "", ignore_sigint: bool = False):
    """``python app.py`` on a free port, its uploads under ``cache``, until the block ends; its
    output goes to ``artifacts/app_lifetime_<cache folder><tag>.log``."""
    env = {"GRADIO_TEMP_DIR": str(cache), "WORKBENCH_UPLOAD_TTL": str(ttl)}
    return serve_app(env, f"app_lifetime_{cache.name}{tag}.log", ignore_sigint)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("cache")) as (_, url):
        yield url


def test_an_upload_in_use_outlives_the_idle_time(app: str) -> None:
    path = upload(app, EXAMPLES / "tumor_seg_phantom_1.tif")
    start = time.monotonic()
    while time.monotonic() - start < 2 * TTL:  # used every TTL/4 (plus the analysis' time)
        kind, answer = call(app, "tumor_segment", file_data(path))
        assert kind == "complete", answer
        time.sleep(TTL / 4)


def test_an_expired_upload_asks_for_the_file_again(app: str) -> None:
    path = upload(app, EXAMPLES / "tumor_seg_phantom_2.tif")
    time.sleep(TTL + 4)  # unused past the idle time, and one sweep later
    kind, message = call(app, "tumor_segment", file_data(path))
    assert kind == "error"
    assert "upload the file again" in str(message) and "check the path" not in str(message)


def test_a_missing_upload_gets_the_upload_again_message(tmp_path: Path) -> None:
    from workbench.errors import InputError
    from workbench.ui.common import upload_path

    with pytest.raises(InputError, match="upload the file again"):
        upload_path(str(tmp_path / "gone.png"))


@pytest.mark.browser
def test_examples_still_run_after_the_sweep(app: str, browser) -> None:
    time.sleep(TTL + 4)  # the app has swept its cache at least once since it started
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    try:
        page.goto(app, wait_until="load")
        page.get_by_role("tab", name="Brain tumour").click()
        page.locator(".gallery-item, button.example, td").filter(
            has_text="tumor_seg_phantom_1"
        ).first.click()
        page.locator("#tumor-overlay img").wait_for(state="visible", timeout=120_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "example_after_sweep.png"), full_page=True)
    finally:
        page.close()


@pytest.mark.browser
def test_closing_the_page_deletes_what_it_uploaded(tmp_path: Path, browser) -> None:
    cache = tmp_path / "cache"
    with serve(cache, ttl=3600) as (_, url):  # the idle-time sweep stays out of the way
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Brain tumour").click()
        page.locator("#tumor-upload input[type=file]").set_input_files(
            str(EXAMPLES / "tumor_seg_phantom_2.tif")
        )
        page.locator("#tumor-overlay img").wait_for(state="visible", timeout=120_000)
        uploaded = [p for p in cache.rglob("tumor_seg_phantom_2.tif")]
        assert uploaded and all(p.is_file() for p in uploaded)
        page.close()
        deadline = time.monotonic() + 60
        while any(p.exists() for p in uploaded) and time.monotonic() < deadline:
            time.sleep(1)
        assert not any(p.exists() for p in uploaded)


def test_a_file_two_sessions_share_goes_with_the_last_of_them(tmp_path: Path) -> None:
    from workbench.ui.uploads import SessionFiles

    shared, own = tmp_path / "same_upload.dcm", tmp_path / "result_folder"
    shared.write_bytes(b"x")
    (own / "mask.nii.gz").parent.mkdir()
    (own / "mask.nii.gz").write_bytes(b"y")
    sessions = SessionFiles()
    sessions.add("a", shared)
    sessions.add("a", own)
    sessions.add("b", shared)
    assert sessions.end("a") == [own]
    assert shared.is_file() and not own.exists()
    assert sessions.end("b") == [shared]
    assert not shared.exists()
    assert sessions.end("never seen") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_app_deletes_uploads_and_start_up_sweeps_old_runs(
    tmp_path: Path, sig: signal.Signals
) -> None:
    cache = tmp_path / "cache"
    leftover = cache / f"run-{2**22 + 1}"  # above Linux's largest pid: a run that has ended
    (leftover / "abc").mkdir(parents=True)
    (leftover / "abc" / "patient.dcm").write_bytes(b"left by a killed run")
    # Started as `python app.py &` would be, with SIGINT ignored: it must still stop on one.
    with serve(cache, tag=f"_{sig.name}", ignore_sigint=True) as (proc, url):
        assert not leftover.exists()  # an earlier run's uploads are swept at start-up
        saved = Path(upload(url, EXAMPLES / "hemorrhage_phantom_normal.dcm"))
        assert saved.is_file() and cache in saved.parents
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    assert not saved.exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_identical_perfusion_requests_get_their_own_result_files(app: str) -> None:
    path = upload(app, EXAMPLES / "perfusion_phantom.zip")
    results = [call(app, "perfusion_maps", file_data(path), "osvd", None) for _ in range(2)]
    assert all(kind == "complete" for kind, _ in results), results
    first, second = ({f["path"] for f in answer[-1]} for _, answer in results)
    assert first and len(first) == len(second)
    assert not first & second  # a later request never rewrites an earlier one's download
