"""Brain Imaging Workbench: one Gradio app, one tab per task.

    python app.py                        # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080   # serve on the local network

For research and teaching only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
from typing import TYPE_CHECKING

from workbench import DISCLAIMER
from workbench.ui import uploads

if TYPE_CHECKING:
    import gradio as gr

# Tabs that show no one task, after the tasks' own: (title, "module:function" building it).
OTHER_TABS: list[tuple[str, str]] = [("Models", "workbench.ui.models:build")]
QUEUE_SIZE = 100  # requests waiting at most; more get "queue full" at once, not a time-out

# The banner sets its own colours in both themes: gradio's dark text colour on its light
# background was unreadable.
CSS = """
.wb-banner {background:#fff4e5;border:1px solid #f0b35a;border-radius:8px;padding:8px 12px;
            color:#6b3d00;font-size:0.95em}
.dark .wb-banner {background:#3d2a10;border-color:#b7791f;color:#ffe2b8}
.wb-banner * {color:inherit}
footer {visibility: hidden}
"""


def theme() -> gr.themes.Base:
    """System fonts only: the default theme's web fonts would be fetched from the internet,
    which an offline hospital network (or a locked-down Space) may not reach."""
    import gradio as gr

    return gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "monospace"],
    )


def tabs() -> list[tuple[str, str]]:
    """(title, builder) of every tab in order: one per registered task, in registry order, a tab
    shared by several tasks (Brain tumour: detection and segmentation) once where its first task
    stands; then :data:`OTHER_TABS`."""
    from workbench.tasks import list_tasks

    seen: dict[str, str] = {}
    for spec in list_tasks():
        seen.setdefault(spec.tab, spec.tab_title)
    return [(title, builder) for builder, title in seen.items()] + OTHER_TABS


def build_app() -> gr.Blocks:
    import gradio as gr

    from workbench.tasks.base import resolve_ref
    from workbench.ui.common import banner, end_session

    # Uploads and results live only in gradio's cache, deleted after an idle time
    # (workbench.ui.uploads); examples are served from examples/ and never swept.
    with gr.Blocks(title="Brain Imaging Workbench", delete_cache=uploads.sweep_schedule()) as demo:
        gr.Markdown("# Brain Imaging Workbench")
        for title, builder in tabs():
            with gr.Tab(title):
                banner()
                try:  # a tab whose module cannot be imported says so, the others still work
                    resolve_ref(builder)()
                except ImportError as err:
                    gr.Markdown(f"This tab is unavailable: `{err}`.")
        gr.Markdown(f"<sub>{DISCLAIMER}</sub>")
        demo.unload(end_session)  # a closed page's uploads and results are deleted at once
    # Memory is bounded by how many jobs run, not by how many wait: two model jobs at a time
    # (concurrency_id "models"), one perfusion series ("perfusion"), each request's working
    # memory bounded by workbench.io.limits. A waiting request holds only its upload's path, so
    # the queue takes two per client of a 50-client class (bench/load.py --clients 50).
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"Brain Imaging Workbench. {DISCLAIMER}")
    # None leaves gradio's own defaults and its GRADIO_SERVER_NAME / GRADIO_SERVER_PORT variables,
    # which is how Hugging Face Spaces configures the server.
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    args = parser.parse_args(argv)
    from workbench.logsafe import configure  # library warnings without header values

    configure(logging.INFO)
    # SIGTERM (docker stop, systemd, a Space restart) stops the server like Ctrl-C, so that the
    # run's folder of uploads is deleted either way. SIGINT is set too: a shell starts background
    # jobs (`python app.py &`, nohup) with SIGINT ignored, and Python then leaves it ignored.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.default_int_handler)
    run = uploads.claim_run_folder()  # before gradio is imported: it reads the folder once
    try:
        build_app().launch(
            server_name=args.host,
            server_port=args.port,
            css=CSS,
            theme=theme(),
            max_file_size="200mb",
        )
    except KeyboardInterrupt:  # a stop that lands before launch() reaches its own wait loop
        pass
    finally:
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    main()
    # The server is closed and the uploads deleted: skip the interpreter's teardown of torch and
    # co., seconds of CPU that a busy machine stretched past a stop's grace time (docker: 10 s).
    sys.stdout.flush()
    logging.shutdown()
    os._exit(0)
