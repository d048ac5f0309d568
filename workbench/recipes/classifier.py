"""Training recipe shared by the image classifiers (MR contrast, tumour detection, 44 classes).

What differs between the tasks is data (:mod:`workbench.recipes.classifier_tasks`): the label
map, the study's recipe and the CPU recipe the shipped weights were trained with. One path does
the rest: scan the class folders, decode once, split stratified with near-duplicates kept on one
side, train one timm model per ``--arch`` entry (several make an ensemble, as in the detection
study), save one model folder, evaluate it as reloaded from that folder, and write the card.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from safetensors.torch import load_file
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import WeightedRandomSampler

from workbench.cards import put_section
from workbench.data.folders import (
    FolderImages,
    Sample,
    dhash_bits,
    get_label_map,
    hamming,
    label_conflicts,
    near_duplicate_groups,
    scan_dataset,
    stratified_group_split,
)
from workbench.errors import InputError
from workbench.model_config import ModelConfig
from workbench.models import Ensemble, build_model
from workbench.ood import card_section, fit_ood
from workbench.recipes.classifier_report import write_report
from workbench.recipes.classifier_tasks import CLASSIFIER_TASKS, ClassifierOptions, ClassifierTask
from workbench.scripts import dataclass_from_args, finish, preset_parser
from workbench.tasks.classify import members
from workbench.training import TrainConfig, fit, machine_summary, predict_loader
from workbench.transforms.mr import Preprocess
from workbench.weights import CONFIG_NAME, load, load_folder, save_pretrained

SPLIT_NAMES = ("train", "val", "test")
# The held-out file names, beside the weights (as nnU-Net keeps splits_final.json): the split
# follows the decoded images, so without it runs at another input size would not share one.
SPLIT_FILE = "split.json"
# Machine paths, not part of the recipe, so not stored with the weights; ``--report-only`` takes
# them from its own flags.
LOCAL_OPTIONS = ("cache_dir", "work_dir", "split_file", "extra_data", "more_data")


def member_spec(arch: str, opts: ClassifierOptions, num_classes: int, pretrained: bool) -> dict:
    """The ``timm_classifier`` spec of one model; ``--dropout`` sits before the last linear
    layer, inside the dense head when there is one, else as timm's ``drop_rate``."""
    hidden = opts.head_hidden
    return {
        "name": "timm_classifier",
        "args": {
            "backbone": arch,
            "num_classes": num_classes,
            "in_chans": 3,
            "pretrained": pretrained,
            "head_hidden": hidden,
            "dropout": opts.dropout if hidden else 0.0,
            "drop_rate": 0.0 if hidden else opts.dropout,
            "freeze_up_to": opts.freeze_up_to or None,
        },
    }


def model_spec(opts: ClassifierOptions, num_classes: int) -> dict:
    """The saved model's spec: one classifier, or the ensemble of all ``--arch`` entries.

    ``pretrained`` is stored as False: the trained weights follow in the folder, and an ensemble's
    members must not fetch ImageNet weights on load.
    """
    members = [member_spec(a, opts, num_classes, pretrained=False) for a in opts.archs]
    if len(members) == 1:
        return members[0]
    return {"name": "ensemble", "args": {"members": members, "voting": opts.voting}}


@dataclass
class PreparedData:
    """The decoded dataset and its split (index arrays into ``data``).

    Samples come in order: ``--data``, each ``--more-data`` folder (both split, by patient where
    the layout names patients), then ``--extra-data`` (training only).
    """

    data: FolderImages
    splits: dict[str, np.ndarray]
    groups: np.ndarray  # split group of each split image: patient or near-duplicate group
    keys: list[str]  # each image's name in split.json and cards
    conflicts: list[list[int]] = field(default_factory=list)  # identical images, differing labels
    extra_root: Path | None = None  # --extra-data: its images follow the others, all train
    more_roots: list[Path] = field(default_factory=list)

    @property
    def extra_count(self) -> int:
        """``--extra-data`` images in training (near-copies of held-out ones are left out)."""
        return int((self.splits["train"] >= len(self.groups)).sum())

    def source_count(self, root: Path) -> int:
        """Images of one split source (``--data`` or a ``--more-data`` folder)."""
        return sum(s.source == root.name for s in self.data.samples[: len(self.groups)])

    def held_out_files(self) -> dict[str, list[str]]:
        """The ``split.json`` content: file names of every split but ``train`` (the rest)."""
        return {
            name: [self.keys[int(i)] for i in idx]
            for name, idx in self.splits.items()
            if name != "train"
        }

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: dict(sorted(Counter(self.data.samples[i].label for i in idx).items()))
            for name, idx in self.splits.items()
        }

    def conflict_records(self) -> list[dict[str, Any]]:
        """Each set of identical images filed under different labels, as ``class folder/file``
        with its label and the split it fell in (copies share a near-duplicate group, so one)."""
        split_of = {int(i): name for name, idx in self.splits.items() for i in idx}
        return [
            {
                "images": [self.keys[i] for i in idx],
                "labels": [self.data.samples[i].label for i in idx],
                "split": split_of[idx[0]],
            }
            for idx in self.conflicts
        ]


def _subsample(samples: list[Sample], per_class: int, seed: int) -> list[Sample]:
    """At most ``per_class`` samples of each class (quick runs), chosen at random but stably."""
    if not per_class:
        return samples
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    rng = random.Random(seed)
    return sorted(
        (s for group in by_class.values() for s in rng.sample(group, min(per_class, len(group)))),
        key=lambda s: (s.label, str(s.path), s.channel),
    )


def split_key(sample: Sample, root: Path, prefix: str = "") -> str:
    """How ``split.json`` names a sample: its path under its dataset folder (after the folder's
    name for every dataset but ``--data``), and ``#<channel>`` for one channel of a file."""
    key = prefix + sample.path.relative_to(root).as_posix()
    return key if sample.channel < 0 else f"{key}#{sample.channel}"


def source_keys(roots: Sequence[Path], sources: Sequence[list[Sample]]) -> list[str]:
    """The split keys of the samples of each source folder, in order (the first unprefixed)."""
    return [
        split_key(s, r, "" if k == 0 else f"{r.name}/")
        for k, (r, src) in enumerate(zip(roots, sources, strict=True))
        for s in src
    ]


def split_samples(
    folder: Path, data: Path, more: Sequence[Path] = (), extra: Path | None = None
) -> tuple[list[Sample], list[Sample]]:
    """(training, held-out) samples of a trained classifier folder, from its ``split.json`` over
    the same data folders it was trained on: for refitting its OOD statistics or measuring it
    without training again."""
    task, opts = CLASSIFIER_TASKS[ModelConfig.read(folder).task], ClassifierOptions()
    roots = [Path(data), *map(Path, more)]
    sources = [_scan(r, task, opts, 0) for r in roots]
    keys = source_keys(roots, sources)
    where = read_split_file(Path(folder) / SPLIT_FILE, keys)
    held_name = "test" if "test" in where.values() else "val"
    samples = [s for src in sources for s in src]
    held = [s for s, k in zip(samples, keys, strict=True) if where.get(k) == held_name]
    train = [s for s, k in zip(samples, keys, strict=True) if k not in where]
    return train + (_scan(extra, task, opts, 0) if extra else []), held


def _scan(root: Path, task: ClassifierTask, opts: ClassifierOptions, seed: int) -> list[Sample]:
    samples = scan_dataset(root, get_label_map(task.label_map))
    return [replace(s, source=root.name) for s in _subsample(samples, opts.max_per_class, seed)]


def prepare(
    data_dir: Path, task: ClassifierTask, opts: ClassifierOptions, seed: int, progress: bool = True
) -> PreparedData:
    """Scan, decode once, and split ``train``/``val`` (/``test``) by near-duplicate group.

    Every source (``--data`` and each ``--more-data`` folder) is split on its own, stratified by
    class, so each is represented in every split and reported apart; a ``--split-file`` fixes the
    split of the sources it names. ``--unseen`` patients are held out whole (the ``unseen``
    split): a source the model never saw. ``--extra-data`` images are appended after the others
    and go to ``train``, leaving out any within ``dup_distance`` of a held-out image.
    """
    roots = [Path(data_dir), *opts.more_roots]
    sources = [_scan(r, task, opts, seed) for r in roots]
    extra_root = Path(opts.extra_data) if opts.extra_data else None
    extra = _scan(extra_root, task, opts, seed) if extra_root else []
    samples = [s for src in sources for s in src]
    keys = source_keys(roots, sources)
    if extra_root:
        keys += [split_key(s, extra_root, f"{extra_root.name}/") for s in extra]
    classes = sorted({s.label for s in samples + extra})
    prep = Preprocess(
        size=(opts.size, opts.size), channels=3, imagenet_norm=True, foreground=opts.foreground
    )
    data = FolderImages(
        samples + extra, classes, prep, cache_dir=opts.cache_dir or None, progress=progress
    )
    bits = dhash_bits(data.images)
    groups = source_groups(sources, bits, opts.dup_distance)
    stored = read_split_file(Path(opts.split_file), keys[: len(samples)]) if opts.split_file else {}
    side = np.array([stored.get(k, "") for k in keys[: len(samples)]], dtype=object)
    unseen = re.compile(opts.unseen) if opts.unseen else None
    fractions = [1 - opts.val_fraction - opts.test_fraction, opts.val_fraction]
    if opts.test_fraction:
        fractions.append(opts.test_fraction)
    start = 0
    for src in sources:
        idx = np.arange(start, start + len(src))
        start += len(src)
        named = any(side[idx])  # the split file names this source's held-out images
        if unseen is not None:
            side[[i for i in idx if unseen.search(samples[i].group)]] = "unseen"
        if named:
            side[idx[side[idx] == ""]] = "train"
            continue
        idx = idx[side[idx] == ""]
        labels = [samples[i].label for i in idx]
        parts = stratified_group_split(labels, groups[idx], fractions, seed)
        for name, part in zip(SPLIT_NAMES, parts, strict=False):
            side[idx[part]] = name
    names = [n for n in (*SPLIT_NAMES, "unseen") if n == "train" or (side == n).any()]
    splits = {n: np.nonzero(side == n)[0] for n in names}
    extra_idx = np.arange(len(samples), len(data))
    held = np.concatenate([idx for name, idx in splits.items() if name != "train"])
    if len(extra_idx) and len(held):
        near = hamming(bits[extra_idx], bits[held]).min(axis=1) <= opts.dup_distance
        extra_idx = extra_idx[~near]
    splits["train"] = np.concatenate([splits["train"], extra_idx])
    conflicts = label_conflicts(data.images, [s.label for s in data.samples])
    return PreparedData(data, splits, groups, keys, conflicts, extra_root, roots[1:])


def source_groups(
    sources: Sequence[list[Sample]], bits: np.ndarray, dup_distance: int
) -> np.ndarray:
    """The group each split sample must share a split with, numbered across sources.

    A source whose samples all name a patient is grouped by patient alone: slices of different
    people can be near-duplicates by hash (the LGG set's many similar slices chain most patients
    into one group), yet they are not copies. Other sources are grouped by near-duplicate hash.
    """
    out, start, offset = [], 0, 0
    for src in sources:
        names = [s.group for s in src]
        if all(names):
            local = np.unique(names, return_inverse=True)[1]
        else:
            local = near_duplicate_groups(bits[start : start + len(src)], dup_distance, names)
        out.append(local + offset)
        start, offset = start + len(src), offset + int(local.max()) + 1
    return np.concatenate(out)


def read_split_file(path: Path, keys: list[str]) -> dict[str, str]:
    """Split name of each key a ``split.json`` holds out. Entries are file keys, or folders
    (a patient: ``kaggle_3m/TCGA_CS_4941_19960909``) holding out everything under them."""
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the split file {path}: {err}") from None
    where = {entry: name for name, entries in held.items() for entry in entries}
    out, used = {}, set()
    for key in keys:
        parts = key.split("#")[0].split("/")
        for entry in (key, *("/".join(parts[:n]) for n in range(len(parts) - 1, 0, -1))):
            if entry in where:
                out[key] = where[entry]
                used.add(entry)
                break
    unknown = [e for e in where if e not in used]
    if unknown:
        raise InputError(
            f"{len(unknown)} held-out entries of {path} (e.g. {unknown[0]!r}) match no image of "
            "the data; the split file was made for other data."
        )
    return out


def loss_for(opts: ClassifierOptions, targets: torch.Tensor, num_classes: int) -> nn.Module:
    """Cross-entropy, with inverse-frequency class weights if asked (``--class-weighting``)."""
    weight = None
    if opts.class_weighting:
        counts = torch.bincount(targets, minlength=num_classes).clamp(min=1).float()
        weight = counts.sum() / (num_classes * counts)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=opts.label_smoothing)


def start_weights(source: str, arch: str) -> dict[str, torch.Tensor]:
    """``--init-from``: the weights of the trained model's member with backbone ``arch``."""
    bundle = load(source)
    names = bundle.config.model.member_names()
    if arch not in names:
        raise InputError(f"{source} holds {', '.join(names)}, no {arch} to start from.")
    return members(bundle.model)[names.index(arch)].state_dict()


def sampler_for(
    opts: ClassifierOptions, model: nn.Module, view: FolderImages
) -> tuple[WeightedRandomSampler | None, int]:
    """How training draws its images, and how many count as hard.

    ``--balanced-sampler`` draws every class equally often; ``--hard-weight`` draws the images
    that the starting model (``--init-from``) gets wrong ``1 + hard_weight`` times as often:
    hard-example mining, for errors that come in clusters (a source collection whose look the
    model took for a label) rather than one at a time. One epoch stays one pass in size.
    """
    if not (opts.balanced_sampler or opts.hard_weight):
        return None, 0
    weights = torch.ones(len(view))
    if opts.balanced_sampler:
        weights = 1.0 / torch.bincount(view.targets).float()[view.targets]
    hard = 0
    if opts.hard_weight:
        wrong = evaluate(model, view)[:, 0].argmax(-1) != view.targets
        weights = weights * (1 + opts.hard_weight * wrong.float())
        hard = int(wrong.sum())
    return WeightedRandomSampler(weights, num_samples=len(view), replacement=True), hard


def val_scores(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    pred = outputs.argmax(dim=-1)
    return {
        "val_accuracy": float((pred == targets).float().mean()),
        "val_macro_f1": float(f1_score(targets, pred, average="macro", zero_division=0)),
    }


def train_member(
    arch: str,
    prepared: PreparedData,
    opts: ClassifierOptions,
    cfg: TrainConfig,
    run_dir: Path,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fit one classifier. Resuming reloads a finished run trained for at least ``cfg.epochs``
    and continues any other run from its checkpoint (an interrupted one, or a finished one asked
    for more epochs)."""
    data, classes = prepared.data, prepared.data.classes
    set_seed(cfg.seed)  # the head's initial weights follow --seed, not earlier RNG use
    model = build_model(member_spec(arch, opts, len(classes), pretrained=opts.pretrained))
    done = run_dir / "done.json"
    finished = json.loads(done.read_text()) if cfg.resume and done.is_file() else None
    if finished and finished.get("planned_epochs", finished["epochs_run"]) >= cfg.epochs:
        model.load_state_dict(load_file(str(run_dir / "best.safetensors")))
        return model.eval(), finished
    if opts.init_from:  # a finished run above needs none of it
        try:
            model.load_state_dict(start_weights(opts.init_from, arch))
        except RuntimeError as err:  # another head or input: name the first mismatch
            raise InputError(
                f"{opts.init_from}'s {arch} is not the model these options build "
                f"({str(err).splitlines()[-1].strip()}); train with its options (--head ...)."
            ) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    # Wall time: the finished runs' minutes plus this run since it (or the interrupted run it
    # resumes) started.
    started = run_dir / "started"
    if finished or not (cfg.resume and started.is_file()):
        started.write_text(str(time.time()))
    train_view = data.view(prepared.splits["train"], augment=opts.augment)
    sampler, hard = sampler_for(opts, model, data.view(prepared.splits["train"]))
    result = fit(
        model,
        train_view,
        data.view(prepared.splits["val"]),
        loss_for(opts, train_view.targets, len(classes)),
        cfg,
        metrics_fn=val_scores,
        out_dir=run_dir,
        sampler=sampler,
        desc=arch,
    )
    info = {
        "arch": arch,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        cfg.monitor: result.best_score,
        "planned_epochs": cfg.epochs,
        **({"hard_examples": hard} if opts.hard_weight else {}),
        "minutes": (finished or {}).get("minutes", 0.0)
        + (time.time() - float(started.read_text())) / 60,
    }
    done.write_text(json.dumps(info, indent=1))
    return result.model, info


def train(
    data_dir: Path,
    out: Path,
    task: ClassifierTask,
    opts: ClassifierOptions,
    cfg: TrainConfig,
    data_note: str = "",
    preset: str = "study",
) -> dict[str, Any]:
    """Train every ``--arch`` model, save one model folder to ``out``, and report on it."""
    if opts.hard_weight and not opts.init_from:
        raise InputError(
            "--hard-weight needs --init-from: hard images are those a trained model gets wrong."
        )
    if opts.threads:
        torch.set_num_threads(opts.threads)
    start = time.perf_counter()
    prepared = prepare(data_dir, task, opts, cfg.seed, progress=cfg.progress)
    prepare_minutes = (time.perf_counter() - start) / 60
    print(json.dumps({"split": prepared.counts()["val"], "groups": len(set(prepared.groups))}))
    work = Path(opts.work_dir) if opts.work_dir else out / "runs"
    models, members = [], []
    for arch in opts.archs:
        model, info = train_member(arch, prepared, opts, cfg, work / arch)
        models.append(model)
        members.append(info)
        print(json.dumps(info))
    model = models[0] if len(models) == 1 else Ensemble(models, opts.voting)
    config = ModelConfig.from_dict(
        {
            "task": task.name,
            "title": task.model_title(opts),
            "model": model_spec(opts, len(prepared.data.classes)),
            "labels": prepared.data.classes,
            "preprocess": prepared.data.prep.to_dict(),
            "training": {
                "data": data_dir.name,
                "data_description": task.data_description(data_dir, prepared.source_count(data_dir))
                + more_description(prepared)
                + extra_description(prepared),
                "images": len(prepared.data),
                **({"extra_data": prepared.extra_root.name} if prepared.extra_root else {}),
                **(
                    {"more_data": [r.name for r in prepared.more_roots]}
                    if prepared.more_roots
                    else {}
                ),
                "split_counts": {k: len(v) for k, v in prepared.splits.items()},
                "near_duplicate_groups": len(set(prepared.groups.tolist())),
                "members": members,
                "machine": machine_summary(),
                "prepare_minutes": prepare_minutes,  # decoding (or reading the decode cache)
                "minutes": prepare_minutes + sum(m["minutes"] for m in members),
                "recipe": asdict(cfg),
                "options": {k: v for k, v in asdict(opts).items() if k not in LOCAL_OPTIONS},
                "preset": preset,
                "initialised_from": opts.init_from or ("ImageNet" if opts.pretrained else "random"),
                "data_note": data_note,
            },
        }
    )
    save_pretrained(model, config, out, "", dtype=torch.float16)
    return report(out, prepared, task)


def more_description(prepared: PreparedData) -> str:
    """The card's mention of ``--more-data`` sources and of ``--unseen`` patients."""
    text = "".join(
        f"; {r.name}: {prepared.source_count(r)} images (`--more-data`, split on its own"
        + (
            ", by patient"
            if any(s.group for s in prepared.data.samples if s.source == r.name)
            else ""
        )
        + ")"
        for r in prepared.more_roots
    )
    unseen = prepared.splits.get("unseen", ())
    if len(unseen):
        patients = sorted({prepared.data.samples[i].group for i in unseen})
        text += (
            f"; {len(unseen)} images of {len(patients)} patients (`--unseen`) never trained on, "
            "reported apart as a held-out source"
        )
    return text


def extra_description(prepared: PreparedData) -> str:
    """The card's mention of ``--extra-data``: which folder, how many images, where they went."""
    if prepared.extra_root is None:
        return ""
    left_out = len(prepared.data) - len(prepared.groups) - prepared.extra_count
    return (
        f"; training also on {prepared.extra_count} images of {prepared.extra_root.name} "
        f"(`--extra-data`, never held out; {left_out} near-copies of held-out images left out)"
    )


def evaluate(model: nn.Module, view: FolderImages, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``(N, M, C)`` of each of the ``M`` models (``M = 1`` alone)."""
    loader = torch.utils.data.DataLoader(view, batch_size=batch_size)
    logits, _ = predict_loader(model, loader)
    return (logits if logits.ndim == 3 else logits[:, None]).softmax(dim=-1)


def report(out: Path, prepared: PreparedData, task: ClassifierTask) -> dict[str, Any]:
    """Evaluate the model folder as saved (float16 weights included) on the held-out split (and
    on ``--unseen`` patients), write metrics, pictures and the card into it, and fit its
    out-of-distribution statistics on the same split."""
    bundle = load_folder(out, f"local: {out}", torch.device("cpu"))
    held = "test" if "test" in prepared.splits else "val"
    parts = {
        name: prepared.data.view(prepared.splits[name])
        for name in (held, "unseen")
        if name in prepared.splits
    }
    probs = {name: evaluate(bundle.model, view) for name, view in parts.items()}
    (out / SPLIT_FILE).write_text(json.dumps(prepared.held_out_files(), indent=1) + "\n")
    result = write_report(
        out,
        bundle.config,
        probs,
        parts,
        held,
        prepared.counts(),
        task,
        prepared.conflict_records(),
    )
    result["ood"] = fit_ood(
        out,
        prepared.splits["train"].tolist(),
        prepared.splits[held].tolist(),
        prepare=lambda i: prepared.data[i][0],
    )
    card = out / "README.md"
    card.write_text(put_section(card.read_text(), card_section(result["ood"])))
    return result


def parse(task: ClassifierTask, argv: list[str] | None) -> argparse.Namespace:
    parser = preset_parser(f"{task.title}. {task.study}", ClassifierOptions, task.presets, argv)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-evaluate the model folder in --out on the same split and rewrite its card",
    )
    return parser.parse_args(argv)


def main(task_name: str, argv: list[str] | None = None) -> dict[str, Any]:
    task = CLASSIFIER_TASKS[task_name]
    args = parse(task, argv)
    opts, cfg = dataclass_from_args(ClassifierOptions, args), dataclass_from_args(TrainConfig, args)
    if args.report_only:
        if not (args.out / CONFIG_NAME).is_file():
            raise InputError(f"{args.out} holds no model folder to report on; train first.")
        saved = ModelConfig.read(args.out).training
        if saved.get("extra_data") and not opts.extra_data:
            raise InputError(
                f"{args.out} was also trained on {saved['extra_data']}; give that folder again "
                "with --extra-data so the card's identical-image check covers it too."
            )
        if saved.get("more_data") and not opts.more_data:
            raise InputError(
                f"{args.out} was also trained and tested on {', '.join(saved['more_data'])}; "
                "give those folders again with --more-data."
            )
        stored = {k: v for k, v in saved["options"].items() if k not in LOCAL_OPTIONS}
        opts = replace(opts, **stored)
        if not opts.split_file and (args.out / SPLIT_FILE).is_file():
            opts = replace(opts, split_file=str(args.out / SPLIT_FILE))
        prepared = prepare(args.data, task, opts, saved["recipe"]["seed"], progress=cfg.progress)
        result = report(args.out, prepared, task)
    else:
        result = train(args.data, args.out, task, opts, cfg, args.data_note, args.preset)
    finish(args.out, args, result)
    return result
