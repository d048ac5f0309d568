"""Train a Tmax net (the study's 1×1×1 Conv3D nets or a 3D U-Net) on DSC perfusion series.

python train/perfusion.py --data DIR --out weights/perfusion --model conv2 --target reference
python -m workbench phantom perfusion --out /tmp/dsc --n 14   # simulated patients with truth
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.perfusion import main
from workbench.scripts import run

if __name__ == "__main__":
    run(main)
