"""Train intracranial-haemorrhage detection (6 labels) on the RSNA layout.

python train/hemorrhage.py --data DIR --out weights/hemorrhage --archs efficientnet_b3
python train/hemorrhage.py --data DIR --out runs/compare --archs study   # the eight backbones
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.hemorrhage import main
from workbench.scripts import run

if __name__ == "__main__":
    run(main)
