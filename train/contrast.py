"""Train the MR contrast classifier (T1 / T1C+ / T2 / FLAIR ...) on folder-per-class slices.

python train/contrast.py --data DIR --out weights/contrast              # the study's recipe
python train/contrast.py --data DIR --out weights/contrast --preset cpu # the shipped CPU recipe

Same as ``workbench-train contrast ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("contrast")
