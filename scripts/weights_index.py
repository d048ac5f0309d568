"""Rewrite ``weights/README.md``, the index of the shipped models, from their cards.

python scripts/weights_index.py
"""

from __future__ import annotations

from pathlib import Path

from workbench.cards import render_index

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"

if __name__ == "__main__":
    (WEIGHTS / "README.md").write_text(render_index(WEIGHTS))
    print(WEIGHTS / "README.md")
