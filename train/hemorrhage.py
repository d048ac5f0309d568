"""Train intracranial-haemorrhage detection (6 labels) on the RSNA layout.

python train/hemorrhage.py --data DIR --out weights/hemorrhage --archs efficientnet_b3
python train/hemorrhage.py --data DIR --out runs/compare --archs study   # the eight backbones

Same as ``workbench-train hemorrhage ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("hemorrhage")
