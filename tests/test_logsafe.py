"""Server log: library warnings keep their origin but never the header values they quote."""

import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parents[1]
UID = "1.2.3.DOE.JOHN.SERIES"

SCRIPT = """
import sys
from workbench.logsafe import configure
from workbench.io import load_image
from workbench.io.series import load_series

configure()
load_image(sys.argv[1])
load_series(sys.argv[1])
"""


def test_pydicom_warnings_reach_the_log_without_the_uid(tmp_path):
    """Issue 18 fault 8: logging.basicConfig(INFO) printed pydicom's 'Invalid value for VR UI:
    1.2.3.DOE.JOHN.SERIES' into the server log."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    with pydicom.config.disable_value_validation():
        ds.SeriesInstanceUID = UID
        ds.save_as(tmp_path / "x.dcm")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "x.dcm")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "withheld" in proc.stderr  # the warnings were there, and logged
    assert "DOE" not in proc.stderr + proc.stdout
