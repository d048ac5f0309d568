"""Where the app keeps uploads and results, and for how long. Imports no gradio: ``app.py`` sets
the folder up before gradio reads it.

Each run of the app owns one folder, ``run-<pid>``, under ``GRADIO_TEMP_DIR`` (default
``<tmp>/brain-workbench``). Gradio's sweep deletes a file once it has gone unused for
``WORKBENCH_UPLOAD_TTL`` seconds (an hour by default; the tabs count each analysis as a use), the
run's folder goes when the app stops (SIGTERM and SIGINT included), and folders of earlier runs
that were killed are deleted when the next one starts: uploads may carry patient data. The uploads
a page analysed and the result files it got are deleted as soon as that page is closed
(:class:`SessionFiles`, called from gradio's ``unload`` event).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

DEFAULT_TTL = 3600  # s: long enough for a page left open over a meeting


def upload_ttl() -> int:
    """Seconds a file may stay unused before the sweep deletes it."""
    return int(os.environ.get("WORKBENCH_UPLOAD_TTL", DEFAULT_TTL))


def sweep_schedule() -> tuple[int, int]:
    """Gradio's ``delete_cache``: (how often to sweep, the age that gets a file deleted)."""
    ttl = upload_ttl()
    return max(1, ttl // 12), ttl


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, but another user's
    return True


def claim_run_folder() -> Path:
    """This run's folder, made gradio's upload folder, after deleting earlier runs' folders
    whose process is gone (and an old one that had this pid)."""
    root = Path(
        os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "brain-workbench"
    )
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("run-*"):
        pid = old.name.removeprefix("run-")
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    run = root / f"run-{os.getpid()}"
    run.mkdir(mode=0o700)
    os.environ["GRADIO_TEMP_DIR"] = str(run)
    return run


class SessionFiles:
    """Which uploads and result folders each browser session used, so that closing the page
    deletes them instead of leaving them to the idle-time sweep.

    Gradio names an upload by its content, so two sessions that send the same file share one
    path: it goes when the last session using it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, set[Path]] = defaultdict(set)

    def add(self, session: str, path: Path) -> None:
        with self._lock:
            self._paths[session].add(path)

    def end(self, session: str) -> list[Path]:
        """Delete what ``session`` used and no live session still uses; returns what went."""
        with self._lock:
            mine = self._paths.pop(session, set())
            others = set().union(*self._paths.values())
        gone = sorted(mine - others)
        for path in gone:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return gone
