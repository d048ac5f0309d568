"""Train brain-tumour segmentation (U-Net / DeepLabV3+) on the LGG kaggle_3m layout.

python train/tumor_seg.py --data DIR --out weights/tumor_seg --arch unet --folds 5

Same as ``workbench-train tumor_seg ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("tumor_seg")
