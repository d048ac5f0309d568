"""Train the tumour-detection ensemble (tumor / no_tumor): class folders or LGG kaggle_3m.

python train/tumor_detect.py --data DIR --out weights/tumor_detect  # the study's recipe
python train/tumor_detect.py --data DIR --out weights/tumor_detect --preset cpu  # shipped
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, no install

from workbench.recipes.classifier import main
from workbench.scripts import run

if __name__ == "__main__":
    run(lambda argv: main("tumor_detect", argv))
