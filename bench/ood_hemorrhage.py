"""How often the haemorrhage model says "unsure": held-out RSNA slices, MR pictures, photos, noise.

    python bench/ood_hemorrhage.py [weights/hemorrhage]

Writes the measured rates into the folder's ``config.json["ood"]["measured"]`` and its card's
"Unsure" section (``bench/ood.py`` does the same for the MR classifiers). Needs ``../shared/data``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import PIL.Image
from skimage import data as skdata

from workbench import ood
from workbench.cards import put_section
from workbench.ct import read_ct
from workbench.data.rsna import scan_rsna
from workbench.model_config import ModelConfig
from workbench.tasks.hemorrhage import THRESHOLD, assess
from workbench.weights import load_folder

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def rates(verdicts: list[dict]) -> dict[str, float]:
    return {
        "n": len(verdicts),
        "ood": float(np.mean([ood.REASON_OOD in v["reason"] for v in verdicts])),
        "unsure": float(np.mean([v["unsure"] for v in verdicts])),
    }


def pictures(arrays: list[np.ndarray], folder: Path, name: str) -> list[Path]:
    """Grey arrays saved as PNGs: the picture route a user's file takes."""
    paths = []
    for k, array in enumerate(arrays):
        paths.append(folder / f"{name}_{k}.png")
        PIL.Image.fromarray(array).save(paths[-1])
    return paths


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "weights" / "hemorrhage"
    bundle = load_folder(folder, f"local: {folder}")
    rng = np.random.default_rng(0)
    mr = sorted((SHARED / "datasets" / "brain_tumor_mri_44c").glob("*/*.jp*g"))
    mr = [np.asarray(PIL.Image.open(mr[i]).convert("L")) for i in rng.choice(len(mr), 40, False)]
    photos = [
        getattr(skdata, name)()
        for name in ("camera", "moon", "page", "coins", "text", "grass", "brick", "gravel")
    ]
    noise = [rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(10)]
    held = set(json.loads((folder / "split.json").read_text())["test"])
    index = scan_rsna(SHARED / "datasets" / "rsna_ich_sample")
    test = index.subset([i for i, image in enumerate(index.ids) if image in held])
    probs, verdicts = assess(bundle, [read_ct(p) for p in test.paths])
    unsure = np.array([v["unsure"] for v in verdicts])
    right = (probs[:, 0] >= THRESHOLD) == (test.targets[:, 0] == 1)
    measured = {"sets": {"held-out RSNA slices": rates(verdicts)}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arrays in (
            ("MR slices (44-class set, as grey PNG)", mr),
            ("grey photos (scikit-image)", photos),
            ("noise", noise),
        ):
            paths = pictures(arrays, Path(tmp), str(len(measured["sets"])))
            measured["sets"][name] = rates(assess(bundle, [read_ct(p) for p in paths])[1])
    measured["heldout"] = {
        "accuracy": float(right.mean()),
        "accuracy_kept": float(right[~unsure].mean()),
        "kept": float((~unsure).mean()),
    }
    config = ModelConfig.read(folder)
    entry = {**config.ood, "measured": measured}
    replace(config, ood=entry).write(folder)
    card = (folder / "README.md").read_text()
    floor = entry["confidence_floor"]
    section = (
        ood.card_section(entry)
        .replace("bench/ood.py", "bench/ood_hemorrhage.py")
        .replace(  # multi-label: the floor applies to `any`'s distance from a coin toss
            f"the calibrated probability is under {floor}",
            f"`any` lies between {1 - floor:g} and {floor:g}",
        )
    )
    (folder / "README.md").write_text(put_section(card, section))
    print(json.dumps(measured, indent=1))


if __name__ == "__main__":
    main()
