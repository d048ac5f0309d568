"""Brain Imaging Workbench: one Gradio app, one tab per task.

    python app.py                        # http://127.0.0.1:7860
    python app.py --host 0.0.0.0 --port 8080   # serve on the local network

For research and teaching only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import TYPE_CHECKING

from workbench import DISCLAIMER

if TYPE_CHECKING:
    import gradio as gr

# (tab title, module with a build() function). A tab whose module cannot be imported says so
# instead of taking the whole app down.
TABS: list[tuple[str, str]] = [
    ("Brain tumour", "workbench.ui.tumor"),
    ("MR contrast", "workbench.ui.contrast"),
    ("Tumour type", "workbench.ui.tumor44"),
    ("Haemorrhage", "workbench.ui.hemorrhage"),
    ("Perfusion", "workbench.ui.perfusion"),
    ("Models", "workbench.ui.models"),
]

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


def build_app() -> gr.Blocks:
    import gradio as gr

    from workbench.ui.common import banner

    # Uploads live only in gradio's temporary cache, swept every minute of anything older than
    # two minutes (and at shutdown): the workbench keeps no copy of what people upload.
    with gr.Blocks(title="Brain Imaging Workbench", delete_cache=(60, 120)) as demo:
        gr.Markdown("# Brain Imaging Workbench")
        for title, module in TABS:
            with gr.Tab(title):
                banner()
                try:
                    importlib.import_module(module).build()
                except ImportError as err:
                    gr.Markdown(f"This tab is unavailable: `{err}`.")
        gr.Markdown(f"<sub>{DISCLAIMER}</sub>")
    # One heavy job at a time per model group, so a perfusion series cannot starve other tabs.
    demo.queue(default_concurrency_limit=2, max_size=32)
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
    build_app().launch(
        server_name=args.host,
        server_port=args.port,
        css=CSS,
        theme=theme(),
        max_file_size="200mb",
    )


if __name__ == "__main__":
    main()
