"""Server logging that never carries header values.

pydicom's and nibabel's warnings quote what they could not parse, and that is often an
identifier (``Invalid value for VR UI: '1.2.3.DOE.JOHN.SERIES'``). :func:`configure` routes
Python warnings into logging and replaces the text of every record from those libraries (and of
every warning) with a neutral line that names only where it came from.
"""

from __future__ import annotations

import logging

# Loggers whose messages may quote file content; "py.warnings" (every warnings.warn) as well.
LIBRARIES = ("pydicom", "nibabel", "PIL")
WITHHELD = "a %s from %s, text withheld (it may quote file header values)"


class WithoutHeaderValues(logging.Filter):
    """Keep the record (its level and origin are useful), drop its text and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] in LIBRARIES or record.name == "py.warnings":
            kind = "warning" if record.name == "py.warnings" else record.levelname.lower()
            record.msg, record.args = WITHHELD, (kind, record.name)
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def configure(level: int = logging.INFO) -> None:
    """``logging.basicConfig`` plus warnings captured, every root handler filtered."""
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(WithoutHeaderValues())
