"""Train the tumour-detection ensemble (tumor / no_tumor): class folders or LGG kaggle_3m.

python train/tumor_detect.py --data DIR --out weights/tumor_detect  # the study's recipe
python train/tumor_detect.py --data DIR --out weights/tumor_detect --preset cpu  # shipped

Same as ``workbench-train tumor_detect ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("tumor_detect")
