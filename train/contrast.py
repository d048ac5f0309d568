"""Train the MR contrast classifier (T1 / T1C+ / T2 / FLAIR ...) on folder-per-class slices.

python train/contrast.py --data DIR --out weights/contrast              # the study's recipe
python train/contrast.py --data DIR --out weights/contrast --preset cpu # the shipped CPU recipe
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.classifier import main
from workbench.scripts import run

if __name__ == "__main__":
    run(lambda argv: main("contrast", argv))
