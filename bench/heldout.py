"""Held-out scores of the shipped segmentation and haemorrhage models, against their targets.

    python bench/heldout.py [--tasks tumor_seg,hemorrhage] [--data ../shared/data/datasets]
                            [--figures DIR]

Each model folder's ``split.json`` names the patients (segmentation) or slices (haemorrhage) it
never trained on; this re-scores exactly those with the shipped weights and prints one table per
task. It reads the real data from ``--data``; a task whose data is absent is skipped with a line.
``--figures`` also draws the haemorrhage model's Grad-CAM per subtype on those slices, the
picture its card shows, into that folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from workbench import weights
from workbench.cards import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "datasets"


def tumor_seg(data: Path, figures: Path | None = None) -> list[dict]:
    from workbench.data.lgg import LGGSlices, scan_kaggle_3m
    from workbench.recipes.tumor_seg import LEVELS, postprocess, predict_masks, score
    from workbench.transforms.mr import Preprocess

    folder, _ = weights.resolve("tumor_seg")
    bundle = weights.load("tumor_seg")
    split = json.loads((Path(folder) / "split.json").read_text())
    records = [
        r for r in scan_kaggle_3m(data / "lgg_kaggle_3m") if r.patient in split["test_patients"]
    ]
    test = LGGSlices(records, Preprocess.from_dict(bundle.config.preprocess))
    pred, true = predict_masks(bundle.model, test)
    min_voxels = bundle.config.postprocess["min_component_voxels"]
    rows = []
    for name, n in (("without post-processing", 0), (f"specks < {min_voxels} removed", min_voxels)):
        report = score(postprocess(pred, test.records, n), true, test.records)
        for level in LEVELS:
            s = report[level]
            rows.append(
                {
                    "masks": name,
                    "level": level.replace("_", " "),
                    "n": s["dice"].n,
                    "Dice": f"{s['dice'].mean:.3f} ± {s['dice'].std:.3f}",
                    "Jaccard": f"{s['jaccard'].mean:.3f}",
                    "HD95 px": f"{s['hd95'].mean:.1f}",
                    "ASSD px": f"{s['assd'].mean:.2f}",
                }
            )
    print(f"tumor_seg: {len(split['test_patients'])} held-out patients, {len(records)} slices")
    print("targets: per-patient Dice >= 0.90, per tumour slice >= 0.85")
    return rows


def hemorrhage(data: Path, figures: Path | None = None) -> list[dict]:
    from workbench.ct import read_ct
    from workbench.data.rsna import LABELS, scan_rsna
    from workbench.recipes.hemorrhage import plot_gradcams, scores
    from workbench.tasks.hemorrhage import probabilities
    from workbench.transforms.ct import CTPreprocess

    folder, _ = weights.resolve("hemorrhage")
    bundle = weights.load("hemorrhage")
    test_ids = set(json.loads((Path(folder) / "split.json").read_text())["test"])
    index = scan_rsna(data / "rsna_ich_sample")
    keep = [i for i, image in enumerate(index.ids) if image in test_ids]
    test = index.subset(keep)
    prob = probabilities(bundle, [read_ct(p) for p in test.paths])
    report = scores(test.targets.astype(float), prob)
    if figures is not None:
        arch = bundle.config.model.member_names()[0]
        prep = CTPreprocess.from_dict(bundle.config.preprocess)
        plot_gradcams(bundle.model, test, prob, prep, figures / f"gradcam_{arch}.png")
    print(f"hemorrhage: {len(keep)} held-out slices")
    print(
        f"weighted log loss {report['weighted_log_loss']:.4f}; targets: AUC(any) >= 0.90, "
        f"mean AUC over subtypes with >= 10 positives >= 0.85 (here {report['mean_auc_10']:.3f})"
    )
    return [
        {"label": label, **{k: _fmt(v) for k, v in report["per_label"][label].items()}}
        for label in LABELS
    ]


def _fmt(value: float) -> str | int:
    return value if isinstance(value, int) else ("nan" if np.isnan(value) else f"{value:.3f}")


TASKS = {"tumor_seg": (tumor_seg, "lgg_kaggle_3m"), "hemorrhage": (hemorrhage, "rsna_ich_sample")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--figures", type=Path, help="folder for the haemorrhage Grad-CAM figure")
    args = parser.parse_args()
    for task in args.tasks.split(","):
        run, folder = TASKS[task]
        if not (args.data / folder).is_dir():
            print(f"{task}: skipped, no {args.data / folder}")
            continue
        print(markdown_table(run(args.data, args.figures)))
        print()


if __name__ == "__main__":
    main()
