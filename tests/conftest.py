"""Shared fixtures. Real data lives beside the repository in ``../shared/data``; tests that need
it skip with a reason when it is absent (a fresh clone elsewhere)."""

import os
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    extra_env: dict[str, str], log_name: str, ignore_sigint: bool = False
) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python app.py`` on a free loopback port with ``extra_env``, answering before the block
    starts; stopped with SIGTERM (SIGKILL if it lingers) when the block ends. ``ignore_sigint``
    starts it as a shell starts a background job, with SIGINT ignored."""
    import signal

    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **extra_env}
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / log_name, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
            if ignore_sigint
            else None,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"app.py exited with {proc.returncode}; see {log_name}")
                if time.monotonic() > deadline:
                    pytest.fail("app.py did not answer within 180 s")
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    time.sleep(1)
            yield proc, url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture(scope="session")
def app_url():
    """The real app (``python app.py``) serving on a free loopback port for the session."""
    with serve({}, "app_server.log") as (_, url):
        yield url


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Chromium:
    """One headless Chromium for the session, relaunched when it has died: a crash (often the
    machine running out of memory) then fails the test it happened in, not every later one."""

    def __init__(self, playwright, executable: str) -> None:
        self._launch = lambda: playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        self._browser = self._launch()
        self._dead = False
        self._browser.on("disconnected", lambda _: setattr(self, "_dead", True))

    def get(self):
        if self._dead or not self._browser.is_connected():
            warnings.warn(
                "Chromium had exited (crashed or was killed, often for lack of memory); "
                "relaunched it for this test",
                stacklevel=2,
            )
            self._browser = self._launch()
            self._dead = False
            self._browser.on("disconnected", lambda _: setattr(self, "_dead", True))
        return self._browser

    def close(self) -> None:
        if self._browser.is_connected():
            self._browser.close()


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium through Playwright; skips when either is missing."""
    import shutil

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        launcher = Chromium(pw, executable)
        yield launcher
        launcher.close()


@pytest.fixture
def browser(chromium: Chromium):
    """A live browser for this test: the session's, relaunched first if it died."""
    return chromium.get()


@pytest.fixture
def page(browser, app_url: str):
    """A fresh page on the app, loaded (not waiting for network idle: gradio keeps a stream)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_url, wait_until="load")
    yield page
    page.close()


@pytest.fixture(scope="module")
def bench():
    """``bench/perfusion_delay.py`` as a module: its simulator and scores are what the perfusion
    tests check Tmax against."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "perfusion_delay.py"
    spec = importlib.util.spec_from_file_location("perfusion_delay", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
