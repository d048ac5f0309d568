"""Train a Tmax net (the study's 1×1×1 Conv3D nets or a 3D U-Net) on DSC perfusion series.

python train/perfusion.py --data DIR --out weights/perfusion --model conv2 --target reference
python -m workbench phantom perfusion --out /tmp/dsc --n 14   # simulated patients with truth

Same as ``workbench-train perfusion ...``; needs the clone installed first: ``pip install -e .``.
"""

from workbench.train import run_task

if __name__ == "__main__":
    run_task("perfusion")
