"""Train the 44-class tumour type x contrast classifier on the 44-class folders.

python train/tumor44.py --data DIR --out weights/tumor44              # the study's recipe
python train/tumor44.py --data DIR --out weights/tumor44 --preset cpu # the shipped CPU recipe
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.classifier import main
from workbench.scripts import run

if __name__ == "__main__":
    run(lambda argv: main("tumor44", argv))
