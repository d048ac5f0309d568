"""Rewrite ``weights/README.md``, the index of the shipped models, from their cards.

python scripts/weights_index.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.cards import render_index

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"

if __name__ == "__main__":
    (WEIGHTS / "README.md").write_text(render_index(WEIGHTS))
    print(WEIGHTS / "README.md")
