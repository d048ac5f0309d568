"""Train brain-tumour segmentation (U-Net / DeepLabV3+) on the LGG kaggle_3m layout.

python train/tumor_seg.py --data DIR --out weights/tumor_seg --arch unet --folds 5
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.tumor_seg import main
from workbench.scripts import run

if __name__ == "__main__":
    run(main)
