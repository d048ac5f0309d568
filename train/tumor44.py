"""Train the 44-class tumour type x contrast classifier on the 44-class folders.

python train/tumor44.py --data DIR --out weights/tumor44              # the study's recipe
python train/tumor44.py --data DIR --out weights/tumor44 --preset cpu # the shipped CPU recipe

Same as ``workbench-train tumor44 ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("tumor44")
