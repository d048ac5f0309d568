"""The real server, called the way a program would: through gradio_client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def client(app_url: str):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(app_url, verbose=False)


def test_help_prints_usage_instead_of_starting_the_server() -> None:
    import subprocess
    import sys

    root = EXAMPLES.parent
    done = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--port" in done.stdout and "not for diagnosis" in done.stdout


def test_help_answers_without_importing_gradio() -> None:
    import subprocess
    import sys

    probe = (
        "import runpy, sys\n"
        "sys.argv = ['app.py', '--help']\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('gradio imported:', 'gradio' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=EXAMPLES.parent, capture_output=True, text=True
    )
    assert "--port" in done.stdout and "gradio imported: False" in done.stdout, done.stderr


def test_every_page_says_research_only(app_url: str) -> None:
    import urllib.request

    config = urllib.request.urlopen(app_url + "config", timeout=30).read().decode()
    assert config.count("not for diagnosis") >= 2  # the banner in each tab and the footer


def test_tumour_tab_segments_an_example(client) -> None:
    from gradio_client import handle_file

    example = EXAMPLES / "tumor_seg_phantom_1.tif"
    slice_view, overlay, measures, about = client.predict(
        handle_file(str(example)), api_name="/tumor_segment"
    )
    shown = np.asarray(PILImage.open(overlay))
    original = np.asarray(PILImage.open(slice_view))
    assert shown.shape == original.shape
    assert measures["tumor_found"] and measures["area_px"] > 20
    changed = np.any(shown != original, axis=-1).sum()  # the outline and fill were drawn
    assert changed >= measures["area_px"] * 0.9
    assert "weights" in about


def test_a_text_file_gets_a_one_line_reason(client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    bad = tmp_path / "report.png"
    bad.write_text("not an image")
    with pytest.raises(Exception, match=r"report\.png") as info:
        client.predict(handle_file(str(bad)), api_name="/tumor_segment")
    assert "Traceback" not in str(info.value)
