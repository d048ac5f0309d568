"""What every tab shares: reading uploads, turning errors into one-line messages, model status.

Tabs stay thin: they call the task functions and these helpers, nothing else.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from gradio.context import LocalContext
from gradio.utils import get_upload_folder, is_in_or_equal

from workbench import DISCLAIMER
from workbench.errors import InputError
from workbench.io import Image, load_image
from workbench.io.limits import DEFAULT_LIMITS, check_file_size
from workbench.tasks import get_task
from workbench.tasks.base import EXAMPLES_DIR
from workbench.ui.uploads import SessionFiles, upload_ttl
from workbench.weights import ModelBundle, load

log = logging.getLogger("workbench.ui")
F = TypeVar("F", bound=Callable[..., Any])
SESSION_FILES = SessionFiles()

# Files served from where they lie, never copied into gradio's swept cache (gr.set_static_paths
# replaces the whole list, so it is kept here).
_IN_PLACE: set[str] = set()

BANNER = f"""<div class="wb-banner" role="note">⚠️ <b>{DISCLAIMER}</b>
Do not upload identifiable patient data. Uploads are deleted from the server after
{max(1, upload_ttl() // 60)} minutes unused, when you close the page and when it stops; nothing
is stored or logged.
</div>"""


def banner() -> gr.HTML:
    """The research-only notice that heads every tab."""
    return gr.HTML(BANNER)


def guarded(fn: F) -> F:
    """Run a tab callback; user mistakes become ``gr.Error`` with the one-line reason.

    Anything else is logged without its arguments (they may hold patient data) and shown as a
    short apology, never a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as err:
            log.exception("unexpected failure in %s: %s", fn.__name__, type(err).__name__)
            raise gr.Error(
                f"the workbench failed on this input ({type(err).__name__}); please report it.",
                print_exception=False,
            ) from None

    return on_space_gpu(wrapper)  # type: ignore[return-value]


def on_space_gpu(fn: F) -> F:
    """On a Hugging Face ZeroGPU Space, borrow the GPU for the call (``spaces.GPU``); elsewhere,
    including ordinary GPU machines (picked up by ``torch.cuda.is_available()``), ``fn`` as is."""
    if not os.environ.get("SPACE_ID"):
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


def upload_path(upload: Any) -> Path:
    """The path gradio saved an upload to, after the size check; a missing upload is a mistake.

    Each use restarts the upload's idle time (the sweep ages files by their ctime), so a file
    stays while someone works on it.
    """
    if upload is None:
        raise InputError("no file given: upload an image or DICOM file, or click an example.")
    path = Path(upload if isinstance(upload, str | os.PathLike) else upload.name)
    if not path.is_file():
        raise InputError(
            f"{path.name} is no longer on the server (uploads are deleted after a while unused): "
            "upload the file again."
        )
    if is_in_or_equal(path, get_upload_folder()):  # an upload, not an example served in place
        os.utime(path)
        _belongs_to_session(path)
    check_file_size(path, DEFAULT_LIMITS)
    return path


def _belongs_to_session(path: Path) -> None:
    """Note ``path`` as used by the page whose request is running, deleted when it closes."""
    request = LocalContext.request.get(None)
    if request is not None and request.session_hash:
        SESSION_FILES.add(request.session_hash, path)


def end_session(request: gr.Request) -> None:
    """Gradio's ``unload`` event: the page closed, so its uploads and results go now."""
    if request.session_hash:
        SESSION_FILES.end(request.session_hash)


def read_upload(upload: Any) -> Image:
    return load_image(upload_path(upload))


def model_for(task: str) -> ModelBundle:
    """The task's shared model; missing weights become the one-line how-to-train message."""
    return load(get_task(task).weights_name)


def provenance(bundle: ModelBundle) -> str:
    """Model name, where its weights came from, and what it was trained on, in markdown."""
    cfg = bundle.config
    data = cfg.training.get("data_description") or cfg.training.get("data", "unknown data")
    return f"**Model:** {cfg.title} · **weights:** `{bundle.source}` · **trained on:** {data}"


def result_folder(prefix: str) -> Path:
    """A folder of this request's own in Gradio's cache (swept with the uploads) for files to
    download: gradio's content-addressed names made identical requests rewrite one file while
    another was downloading it."""
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)  # absent until the first upload
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=cache))
    _belongs_to_session(folder)
    return folder


def served_in_place(files: list[str]) -> list[str]:
    """``files``, served from where they lie for the server's whole life: the upload sweep
    deleted gradio's cached copies of examples, which then failed until a restart."""
    _IN_PLACE.update(files)
    gr.set_static_paths(sorted(_IN_PLACE))
    return files


def examples(*names: str) -> list[str]:
    """Example files shipped in ``examples/`` that exist (a tab shows what it has)."""
    return served_in_place([str(EXAMPLES_DIR / n) for n in names if (EXAMPLES_DIR / n).is_file()])


def upload_box(label: str, *, multiple: bool = False, elem_id: str | None = None) -> gr.File:
    """A file box that takes any file: DICOM from PACS and CDs has no extension, so the readers
    decide by content (gradio's ``file_types`` filter goes by the name)."""
    return gr.File(
        label=label,
        file_count="multiple" if multiple else "single",
        type="filepath",
        elem_id=elem_id,
    )


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared_examples(*relative: str) -> list[str]:
    """Real files offered by path when ``../shared/data`` exists (never copied into the repo)."""
    return served_in_place(
        [str(SHARED_DATA / rel) for rel in relative if (SHARED_DATA / rel).is_file()]
    )


def upload_column(
    label: str,
    *,
    multiple: bool = False,
    elem_id: str | None = None,
    settings: Sequence[gr.components.Component] = (),
    button: str,
    example_names: tuple[str, ...],
    examples_label: str,
) -> tuple[gr.File, gr.Button]:
    """The head of a study tab's input column, top down: the file box, the tab's ``settings``
    (made with ``render=False``), the run button, and shipped examples that only fill the box.

    The examples do not run on click because these analyses take a while; with ``multiple`` each
    example is one row holding a one-file list, the value a multi-file box takes.
    """
    upload = upload_box(label, multiple=multiple, elem_id=elem_id)
    for setting in settings:
        setting.render()
    run = gr.Button(button, variant="primary")
    files = examples(*example_names)
    gr.Examples([[[f]] for f in files] if multiple else files, inputs=upload, label=examples_label)
    return upload, run
