"""How often each classifier says "unsure", on images like its training data and unlike it.

    python bench/ood.py [--tasks contrast tumor44 tumor_detect] [--compare] [--fit | --card]

Per model: the share flagged of its held-out in-distribution images (``split.json``) and of each
out-of-distribution set (CT slices given to MR models, scanner MR DICOMs, phantoms, other MR
datasets, photos, noise), by the OOD score alone and in all (OOD, low confidence or phantom
model), and the accuracy on held-out images not flagged. ``--compare`` first measures the
candidate scores (OOD AUROC, held-out vs each far-OOD set) on the same features; ``--fit`` writes
the chosen statistics into the model folders from the cached features (as ``python -m
workbench.ood fit`` does from scratch), with the measured rates in ``config.json["ood"]`` and the
card's "Unsure" section. Features are cached under ``runs/ood_cache/`` (keyed by
the weights file), so a re-run costs seconds. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from sklearn.metrics import roc_auc_score

from workbench import ood
from workbench.cards import put_section
from workbench.data.folders import Sample, sample_image
from workbench.io import Image, load_image
from workbench.model_config import ModelConfig
from workbench.recipes.classifier import split_samples
from workbench.tasks.classify import calibrated
from workbench.weights import load_folder

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data"
SETS = DATA / "datasets"
D44, DETECT, LGG = (
    SETS / "brain_tumor_mri_44c",
    SETS / "brain_tumor_mri/Training",
    SETS / "lgg_kaggle_3m/kaggle_3m",
)
# Per task: the split data folder, the other split sources, the training-only folder.
TASK_DATA = {
    "contrast": (D44, (LGG,), None),
    "tumor44": (D44, (), None),
    "tumor_detect": (DETECT, (LGG,), D44),
}
# Images per set; the three-network ensemble costs about three times as much per image, so it
# gets fewer (the 2-core machine is shared with training runs).
N_TRAIN = {"contrast": 1500, "tumor44": 300, "tumor_detect": 150}
N_HELD = {"tumor44": 200, "tumor_detect": 120}  # held-out images sampled (default: all)
N_SET = {"contrast": 30, "tumor44": 15, "tumor_detect": 10}  # per sampled OOD set (default 100)
CHUNK = 64
FAR = ("CT slices (RSNA PNG)", "CT DICOM", "phantoms", "photos", "noise")
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "camera",
    "rocket",
    "coins",
    "moon",
    "page",
    "text",
    "immunohistochemistry",
    "hubble_deep_field",
    "grass",
    "brick",
    "gravel",
    "clock",
    "cell",
)


def sample(items: list, n: int = 100) -> list:
    """``n`` of ``items`` (paths or samples), the same ones on every run."""
    return random.Random(0).sample(sorted(items, key=str), min(n, len(items)))


def dicoms(modality: str) -> list[Image]:
    """Loadable single-frame DICOMs of one modality under ``dicom/``; broken ones skipped."""
    found = []
    for path in sorted((DATA / "dicom").rglob("*")):
        if not path.is_file() or path.suffix.lower() in (".md", ".txt"):
            continue
        try:
            image = load_image(path)
        except Exception:
            continue
        if image.modality == modality and image.pixels.ndim in (2, 3) and image.frames == 1:
            found.append(image)
    return found


def phantoms(task: str, cache: Path, n: int) -> list[Path]:
    out = cache / f"phantom_{task}"
    if not out.is_dir():
        cmd = [sys.executable, "-m", "workbench", "phantom", task, "--out", str(out), "--n", "4"]
        subprocess.run([*cmd, "--seed", "7"], check=True, cwd=ROOT, capture_output=True)
    return sample([p for p in out.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".tif")], n)


def photos_and_noise() -> tuple[list[Image], list[Image]]:
    import skimage.data

    def as_image(pixels: np.ndarray, name: str) -> Image:
        return Image(np.asarray(pixels, np.float32)[..., :3], None, "photo", {}, name)

    photos = [as_image(getattr(skimage.data, n)(), n) for n in PHOTOS]
    rng = np.random.default_rng(0)
    noise = [as_image(rng.uniform(0, 255, (256, 256)), f"uniform{i}") for i in range(10)]
    noise += [as_image(rng.normal(0, 1, (256, 256, 3)), f"gauss{i}") for i in range(10)]
    return photos, noise


def ood_sets(task: str, cache: Path) -> dict[str, list]:
    photos, noise = photos_and_noise()
    n = N_SET.get(task, 100)
    sets = {
        "CT slices (RSNA PNG)": sample(
            list((SETS / "rsna_ich_sample/stage_2_train").glob("*.png")), n
        ),
        "CT DICOM": dicoms("CT"),
        "phantoms": phantoms(task, cache, n),
        "photos": photos,
        "noise": noise,
        "scanner MR DICOM": dicoms("MR"),
    }
    if LGG not in TASK_DATA[task][1]:
        sets["LGG slices (other dataset)"] = sample(
            [p for p in LGG.rglob("*.tif") if "_mask" not in p.name], n
        )
    if task != "tumor_detect":  # detection trains on both MR datasets
        sets["Brain Tumor MRI (other dataset)"] = sample(list(DETECT.rglob("*.jpg")), n)
    return sets


def features(task: str, name: str, items: list, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cached (features, logits) of ``items`` under ``task``'s shipped model, saved in chunks
    so that a stopped run resumes."""
    folder = ROOT / "weights" / task
    stamp = int((folder / "model.safetensors").stat().st_mtime)
    stem = f"{name.replace(' ', '_').replace('/', '_')}_{stamp}"
    path = cache / task / f"{stem}.safetensors"
    if not path.is_file():
        bundle = load_folder(folder, task, device=torch.device("cpu"))
        to_input = ood.classifier_input(bundle.config.preprocess)

        def prepare(item):
            return to_input(sample_image(item) if isinstance(item, Sample) else item)

        path.parent.mkdir(parents=True, exist_ok=True)
        parts = []
        for start in range(0, len(items), CHUNK):
            part = cache / task / f"{stem}.{len(items)}.{start}.safetensors"
            if not part.is_file():
                f, z = ood.extract(bundle.model, items[start : start + CHUNK], prepare)
                save_file({"feats": f, "logits": z}, str(part))
            parts.append(load_file(str(part)))
        save_file(
            {k: np.concatenate([p[k] for p in parts]) for k in ("feats", "logits")}, str(path)
        )
        print(f"  cached {task}/{name}: {len(items)}", file=sys.stderr, flush=True)
    t = load_file(str(path))
    return t["feats"], t["logits"]


def compare(train, held, sets) -> None:
    """OOD AUROC of each candidate on every far-OOD set, and its flag rate at 95 % kept."""
    candidates = {
        "knn k=10 pca128": ("knn", dict(pca_dims=128), 10),
        "knn k=1 pca128": ("knn", dict(pca_dims=128), 1),
        "mahalanobis pca128": ("mahalanobis", dict(pca_dims=128), 0),
        "energy": ("energy", {}, 0),
    }
    names = [n for n in FAR if len(sets[n][0])]
    print(
        "| score | "
        + " | ".join(f"AUROC {n}" for n in names)
        + " | mean | flagged far-OOD at 95 % kept |"
    )
    print("|---" * (len(names) + 3) + "|")
    for label, (method, kw, k) in candidates.items():
        stats = ood.fit_stats(*train, method, **kw)
        s_held = ood.score(stats, *held, method, k)
        thr = ood.threshold_for(s_held)
        aucs, flagged, total = [], 0, 0
        for n in names:
            s = ood.score(stats, *sets[n], method, k)
            aucs.append(
                roc_auc_score(np.r_[np.zeros(len(s_held)), np.ones(len(s))], np.r_[s_held, s])
            )
            flagged, total = flagged + int((s > thr).sum()), total + len(s)
        cells = " | ".join(f"{a:.3f}" for a in aucs)
        print(f"| {label} | {cells} | {np.mean(aucs):.3f} | {flagged / total:.0%} |")


def measure(task: str, held, held_labels, sets) -> dict:
    """Flag rates with the statistics stored in the model folder (as the app decides them)."""
    folder = ROOT / "weights" / task
    config = ModelConfig.read(folder)
    stats, entry = ood.load_stats(folder), config.ood

    def decide(f: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        far = ood.score(stats, f, z, entry["method"], entry["k"]) > entry["threshold"]
        probs, confidence = calibrated(config, torch.from_numpy(z))
        low = confidence.numpy() < entry["confidence_floor"]
        return far, far | low, probs.numpy().argmax(1)

    far, unsure_held, pred = decide(*held)
    right = pred == held_labels
    rows = {"held-out in-distribution": {"n": len(right), "ood": far, "unsure": unsure_held}}
    for name, (f, z) in sets.items():
        if len(f):
            far, unsure, _ = decide(f, z)
            rows[name] = {"n": len(f), "ood": far, "unsure": unsure}
    kept = ~unsure_held
    heldout = {"accuracy": right.mean(), "accuracy_kept": right[kept].mean(), "kept": kept.mean()}
    rates = {
        name: {
            "n": row["n"],
            "ood": float(row["ood"].mean()),
            "unsure": float(row["unsure"].mean()),
        }
        for name, row in rows.items()
    }
    return {"sets": rates, "heldout": {k: float(v) for k, v in heldout.items()}}


def print_table(task: str, entry: dict) -> None:
    print(
        f"\n### {task}: {entry['method']} (k={entry['k']}, PCA {entry['pca_dims']}), "
        f"threshold {entry['threshold']:.4f}, confidence floor {entry['confidence_floor']}\n"
    )
    print("| images | n | flagged: unlike training | flagged in all (also low confidence) |")
    print("|---|---|---|---|")
    for name, row in entry["measured"]["sets"].items():
        print(f"| {name} | {row['n']} | {row['ood']:.1%} | {row['unsure']:.1%} |")
    held = entry["measured"]["heldout"]
    print(
        f"\nheld-out accuracy on images not flagged: {held['accuracy_kept']:.2%} "
        f"({held['kept']:.1%} kept; all: {held['accuracy']:.2%})"
    )


def record(task: str, measured: dict) -> dict:
    """Store the measured rates in ``config.json["ood"]`` and the card's "Unsure" section."""
    folder = ROOT / "weights" / task
    config = ModelConfig.read(folder)
    entry = {**config.ood, "measured": measured}
    replace(config, ood=entry).write(folder)
    card = folder / "README.md"
    card.write_text(put_section(card.read_text(), ood.card_section(entry)))
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASK_DATA))
    parser.add_argument("--compare", action="store_true", help="measure the candidate scores")
    parser.add_argument("--fit", action="store_true", help="write the stats to weights/<task>/")
    parser.add_argument(
        "--card",
        action="store_true",
        help="keep the stored stats (e.g. the training script's, fitted on more images) and "
        "write the rates measured with them into config.json and the card",
    )
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "ood_cache")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data at {DATA}")
    torch.set_num_threads(1)  # several runs share 2 cores with training: no thread spinning
    for task in args.tasks:
        data, more, extra = TASK_DATA[task]
        folder = ROOT / "weights" / task
        train_samples, held_samples = split_samples(folder, data, more, extra)
        labels = json.loads((folder / "config.json").read_text())["labels"]
        if task in N_HELD:
            held_samples = sample(held_samples, N_HELD[task])
        held_labels = np.array([labels.index(s.label) for s in held_samples])
        train = features(task, "train", sample(train_samples, N_TRAIN[task]), args.cache)
        held = features(task, "heldout", held_samples, args.cache)
        sets = {
            n: features(task, n, items, args.cache)
            for n, items in ood_sets(task, args.cache).items()
        }
        if args.fit:
            ood.save_ood(folder, *train, *held)
        if (folder / ood.OOD_NAME).is_file():
            measured = measure(task, held, held_labels, sets)
            entry = (
                record(task, measured)
                if args.fit or args.card
                else {
                    **json.loads((folder / "config.json").read_text())["ood"],
                    "measured": measured,
                }
            )
            print_table(task, entry)
        if args.compare:
            print(f"\n### {task}: candidate scores\n")
            compare(train, held, sets)


if __name__ == "__main__":
    main()
