"""The classifier path: folder datasets, near-duplicate-safe splits, the shared recipe trained on
a tiny phantom set, the predict JSON, the header contrast rules on real DICOMs, Grad-CAM."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from workbench.data.folders import (
    AUGMENTS,
    FolderImages,
    dhash_bits,
    get_augment,
    get_label_map,
    label_conflicts,
    near_duplicate_groups,
    scan_dataset,
    split_44_label,
    stratified_group_split,
    tumour_type_of,
)
from workbench.errors import InputError
from workbench.io import load_image
from workbench.io.layouts import FLAIR_CHANNEL, KAGGLE_3M_SEQUENCES
from workbench.models import build_model
from workbench.phantom import write_dataset
from workbench.recipes.classifier import evaluate, main, model_spec, sampler_for, start_weights
from workbench.recipes.classifier_tasks import ClassifierOptions
from workbench.tasks import classify, contrast
from workbench.tasks.contrast_rules import canonical, header_contrast
from workbench.transforms.mr import IMAGENET_STD, Preprocess, to_tensor
from workbench.weights import load_folder, save_pretrained

ROOT = Path(__file__).resolve().parents[1]
TINY = "test_efficientnet_gn"  # 100 k parameters, group norm: no batch statistics to settle


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- label maps and scanning ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "label"),
    [
        ("Astrocitoma T1C+", "T1C+"),
        ("_NORMAL T2", "T2"),
        ("Meningioma T1", "T1"),
        ("T1 pre", "T1 pre"),
        ("T2 FLAIR post", "T2 FLAIR post"),
        ("T2", "T2"),
    ],
)
def test_contrast_label_from_the_folder_suffix_or_as_is(folder: str, label: str) -> None:
    assert get_label_map("contrast").folder(folder) == label


def test_detection_labels_and_an_unknown_folder() -> None:
    to_label = get_label_map("tumor_detect").folder
    assert [to_label(f) for f in ("glioma", "Meningioma", "pituitary", "notumor")] == [
        "tumor",
        "tumor",
        "tumor",
        "no_tumor",
    ]
    assert [to_label(f) for f in ("_NORMAL T2", "Meningioma T1C+", "Tuberculoma T1")] == [
        "no_tumor",
        "tumor",
        "tumor",
    ]
    with pytest.raises(InputError, match="'banana' is not a tumour-detection class"):
        to_label("banana")


def test_44_class_names_split_into_type_and_contrast() -> None:
    assert split_44_label("Astrocitoma T1C+") == ("Astrocitoma", "T1C+")
    assert tumour_type_of("_NORMAL T2") == "normal"


def test_44_class_names_are_shown_in_english() -> None:
    from workbench.tasks.tumor44 import display_name, tumour_type

    assert display_name("Neurocitoma T1C+") == "neurocytoma T1C+"
    assert display_name("_NORMAL T2") == "normal T2"
    assert tumour_type("Meduloblastoma T1") == "medulloblastoma"
    labels = json.loads((ROOT / "weights/tumor44/config.json").read_text())["labels"]
    spelt = {tumour_type(label) for label in labels}
    assert len(spelt) == 15 and {"ependymoma", "papilloma", "astrocytoma", "normal"} <= spelt
    assert split_44_label("Something else") == ("Something else", None)


def test_scan_reads_every_44_class_folder_and_format(tmp_path: Path) -> None:
    root = write_dataset("tumor44", tmp_path / "t44", n=1, seed=3, size=96)
    samples = scan_dataset(root, get_label_map("folder"))
    assert len({s.label for s in samples}) == 44
    assert len(samples) == 44
    data = FolderImages(samples[:6], sorted({s.label for s in samples}), Preprocess(size=(32, 32)))
    assert data.images.dtype == torch.uint8 and data.images.shape == (6, 3, 32, 32)


def test_cached_images_are_what_an_upload_becomes(tmp_path: Path) -> None:
    """A training item equals the inference tensor of the same file, to uint8 rounding."""
    for label, name in (("T1", "contrast_phantom_T1_pre.png"), ("T2", "contrast_phantom_T2.png")):
        (tmp_path / label).mkdir()
        (tmp_path / label / name).write_bytes((ROOT / "examples" / name).read_bytes())
    samples = scan_dataset(tmp_path, get_label_map("contrast"))
    prep = Preprocess(size=(48, 40), imagenet_norm=True)
    data = FolderImages(samples, ["T1", "T2"], prep, progress=False)
    only_t2 = data.view([1, 0]).view([0])  # a view of a view keeps its own rows
    assert [s.label for s in only_t2.samples] == ["T2"] and only_t2.targets.tolist() == [1]
    x, y = only_t2[0]
    expected = to_tensor(load_image(samples[1].path).pixels, prep)
    assert y == 1 and x.shape == (3, 48, 40)
    assert torch.allclose(x, expected, atol=0.6 / 255 / min(IMAGENET_STD))


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_every_augmentation_keeps_a_cached_image_a_cached_image(name: str) -> None:
    torch.manual_seed(0)
    image = torch.linspace(0, 255, 3 * 32 * 32).reshape(3, 32, 32).to(torch.uint8)
    augment = get_augment(name)
    views = [image if augment is None else augment(image) for _ in range(8)]
    assert all(v.shape == image.shape for v in views)
    # uint8 in, uint8 out, or float in [0, 1] for the augmentations that add noise
    assert all(v.dtype == torch.uint8 or v.is_floating_point() for v in views)
    same = [torch.equal(v if v.dtype == torch.uint8 else (v * 255).round(), image) for v in views]
    assert (name == "none") == all(same)


def test_unknown_augmentation_is_named() -> None:
    with pytest.raises(InputError, match="unknown augmentation 'twirl'"):
        get_augment("twirl")


def test_kaggle_3m_layout_is_labelled_by_mask_and_grouped_by_patient(tmp_path: Path) -> None:
    root = write_dataset("tumor_seg", tmp_path / "lgg", n=2, seed=1)
    samples = scan_dataset(root, get_label_map("tumor_detect"))
    assert {s.label for s in samples} == {"tumor", "no_tumor"}
    assert len({s.group for s in samples}) == 2
    # grey FLAIR from every slice; grey T1s only where the FLAIR outline is empty
    assert {s.channel for s in samples if s.label == "tumor"} == {-1, FLAIR_CHANNEL}
    t1 = [s for s in samples if s.channel not in (-1, FLAIR_CHANNEL)]
    assert t1 and all(s.label == "no_tumor" for s in t1)
    with pytest.raises(InputError, match="needs class folders"):
        scan_dataset(root, get_label_map("folder"))


def test_one_class_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "T1").mkdir()
    with pytest.raises(InputError, match="fewer than two classes"):
        scan_dataset(tmp_path, get_label_map("contrast"))


# --- near-duplicates and the split ------------------------------------------------------------


def test_dhash_bits_by_hand() -> None:
    ramp = torch.arange(64, dtype=torch.uint8).repeat(64, 1)  # brightens to the right
    images = torch.stack([ramp, ramp.flip(-1)])[:, None].expand(-1, 3, -1, -1)
    bits = dhash_bits(images, size=4)
    assert bits.shape == (2, 16)
    assert bits[0].all() and not bits[1].any()


def _blobs(n: int, seed: int) -> torch.Tensor:
    """Distinct smooth random pictures (uint8, 3×64×64)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g)
    big = torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear")
    return (big * 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def test_split_is_stratified_and_keeps_near_duplicates_on_one_side() -> None:
    classes = np.repeat(["a", "b", "c"], 40)
    images = _blobs(len(classes), seed=0)
    # every fourth image gets two near-copies (noise of a few grey levels), same class
    g = torch.Generator().manual_seed(1)
    originals = np.arange(0, len(classes), 4)
    copies = [
        (images[i].int() + torch.randint(-3, 4, images[i].shape, generator=g)).clamp(0, 255)
        for i in originals
        for _ in range(2)
    ]
    images = torch.cat([images, torch.stack(copies).to(torch.uint8)])
    labels = np.concatenate([classes, np.repeat(classes[originals], 2)])
    source = np.concatenate([np.arange(len(classes)), np.repeat(originals, 2)])

    groups = near_duplicate_groups(dhash_bits(images), max_distance=12)
    for k, i in enumerate(np.repeat(originals, 2)):  # each copy sits in its original's group
        assert groups[len(classes) + k] == groups[i]
    assert len(set(groups.tolist())) >= 0.9 * len(classes)  # distinct pictures stay apart

    parts = stratified_group_split(labels, groups, (0.7, 0.15, 0.15), seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))
    side = {}
    for p, idx in enumerate(parts):
        for i in idx:
            assert side.setdefault(source[i], p) == p  # an image and its copies share a part
    for idx in parts[1:]:
        counts = {c: int((labels[idx] == c).sum()) for c in "abc"}
        assert min(counts.values()) >= 0.5 * max(counts.values()) > 0  # every class, balanced
    assert 0.6 < len(parts[0]) / len(labels) < 0.8


def test_identical_images_under_different_labels_are_found() -> None:
    images = _blobs(5, seed=3)
    images[3] = images[0]  # same picture, other label: a conflict
    images[4] = images[1]  # same picture, same label: a plain duplicate
    near = images[2].clone()
    near[0, 0, 0] ^= 1  # one grey level apart is not identical
    images = torch.cat([images, near[None]])
    assert label_conflicts(images, ["a", "a", "b", "b", "a", "a"]) == [[0, 3]]


def test_patients_are_kept_together() -> None:
    bits = dhash_bits(_blobs(6, seed=2))
    groups = near_duplicate_groups(bits, 0, ["p1", "p1", "", "p2", "", "p2"])
    assert groups[0] == groups[1] and groups[3] == groups[5]
    assert len(set(groups.tolist())) == 4


# --- header rules on real DICOM files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("pydicom_3.0.2/MR_small.dcm", "T2"),  # spin echo TR 4000 / TE 240
        ("DICOMSamples/MR_Implicit_Little.dcm", "FLAIR"),  # TR 10002 / TE 159.5
        ("dwv/bbmri-53323131.dcm", "T1"),  # MPRAGE TI 1200 / TE 1.64
        ("dwv/bbmri-53323851.dcm", "T1"),
    ],
)
def test_header_rules_on_real_dicoms(shared_data: Path, file: str, expected: str) -> None:
    guess = header_contrast(load_image(shared_data / "dicom" / file).header)
    assert guess is not None and guess["contrast"] == expected
    assert guess["contrast_agent"] is None


def test_contrast_agent_turns_t1_into_t1c() -> None:
    header = {"RepetitionTime": 500, "EchoTime": 12, "ContrastBolusAgent": "Gadovist"}
    assert header_contrast(header)["contrast"] == "T1C+"
    assert header_contrast({"SeriesDescription": "AX T1 POST GAD"})["contrast"] == "T1C+"
    assert header_contrast({"Modality": "MR"}) is None


@pytest.mark.parametrize(
    "header",
    [
        {"RepetitionTime": 9000, "EchoTime": 120, "InversionTime": 2500},
        {"SeriesDescription": "AX T2 DARK-FLUID"},
        {"SeriesDescription": "t2_tirm_tra_dark-fluid"},
        {"ProtocolName": "Ax FLAIR"},
    ],
)
def test_header_rules_know_flair(header: dict) -> None:
    assert header_contrast(header)["contrast"] == "FLAIR"


def test_header_check_flags_disagreement(shared_data: Path) -> None:
    image = load_image(shared_data / "dicom" / "pydicom_3.0.2" / "MR_small.dcm")
    assert contrast.header_check("T2", image)["agree"] is True
    assert contrast.header_check("Meningioma T1C+", image)["agree"] is False
    assert contrast.header_check("T1 post", image)["agree"] is False
    assert canonical("T2 FLAIR post") == "FLAIR" and canonical("T1 post") == "T1C+"


# --- the recipe on a tiny phantom set ------------------------------------------------------------


TWO = ["T1 pre", "T2"]


def write_two_contrasts(out: Path, n: int, seed: int) -> Path:
    root = write_dataset("contrast", out, n=n, seed=seed, size=128)
    for folder in root.iterdir():
        if folder.name not in TWO:
            shutil.rmtree(folder)
    return root


@pytest.fixture(scope="module")
def tiny_contrast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny contrast model (timm's 0.4 M-parameter test ResNet) trained by the real recipe on
    2 × 16 phantom slices, T1 and T2: the pairs T1 pre/post and T2/FLAIR differ too subtly for a
    model this small at 64 px."""
    tmp = tmp_path_factory.mktemp("contrast")
    data = write_two_contrasts(tmp / "data", n=16, seed=1)
    # one slice filed under both labels, as the real 44-class data does: the card must list it
    t1 = sorted((data / TWO[0]).iterdir())[0]
    shutil.copy(t1, data / TWO[1] / t1.name)
    out = tmp / "model"
    main(
        "contrast",
        [
            *("--data", str(data), "--out", str(out), "--arch", "test_resnet", "--no-pretrained"),
            *("--freeze-up-to", "", "--head", "none", "--size", "64", "--epochs", "30"),
            *("--lr", "2e-3", "--optimizer", "adamw", "--batch-size", "8"),
            *("--scheduler", "cosine_step"),
            *("--val-fraction", "0.3", "--patience", "20", "--threads", "1", "--no-progress"),
        ],
    )
    return out


def test_tiny_model_beats_chance_on_held_out_phantoms(tiny_contrast: Path, tmp_path: Path) -> None:
    bundle = load_folder(tiny_contrast, "test", torch.device("cpu"))
    assert bundle.labels == TWO
    fresh = write_two_contrasts(tmp_path / "fresh", n=10, seed=99)
    samples = scan_dataset(fresh, get_label_map("contrast"))
    data = FolderImages(samples, bundle.labels, Preprocess.from_dict(bundle.config.preprocess))
    probs = evaluate(bundle.model, data)[:, 0]
    accuracy = float((probs.argmax(-1) == data.targets).float().mean())
    assert accuracy >= 0.75  # chance is 0.5: 15 of 20 right by chance has p ≈ 0.02
    card = (tiny_contrast / "README.md").read_text()
    assert "model-index" in card and "confusion.png" in card
    assert (tiny_contrast / "confusion.png").is_file()
    assert bundle.config.metrics["accuracy"] > 0.5


def test_probabilities_are_divided_by_the_temperature_fitted_on_held_out(
    tiny_contrast: Path, tmp_path: Path
) -> None:
    bundle = load_folder(tiny_contrast, "test", torch.device("cpu"))
    calibration = bundle.config.calibration
    [t] = calibration["temperature"]
    assert calibration["fitted_on"] == "val" and 0.05 < t < 20 and t != pytest.approx(1.0)
    assert (tiny_contrast / "calibration.png").is_file()
    assert "calibration.png" in (tiny_contrast / "README.md").read_text()
    image = load_image(next((write_two_contrasts(tmp_path, n=1, seed=5) / TWO[0]).iterdir()))
    with torch.inference_mode():
        logits = bundle.model(classify.model_input(bundle, image))[0]
    shown = classify.classify(bundle, image).probs
    np.testing.assert_allclose(shown, (logits / t).softmax(-1).numpy(), atol=1e-5)


def test_report_lists_identical_images_filed_under_two_labels(tiny_contrast: Path) -> None:
    [conflict] = json.loads((tiny_contrast / "report.json").read_text())["label_conflicts"]
    assert sorted(conflict["labels"]) == TWO
    names = {Path(i).name for i in conflict["images"]}
    assert len(names) == 1 and conflict["split"] in {"train", "val"}
    card = (tiny_contrast / "README.md").read_text()
    assert "## Data quality" in card and f"`{conflict['images'][0]}`" in card


def test_report_only_rescores_the_saved_model_on_the_same_split(
    tiny_contrast: Path, tmp_path: Path
) -> None:
    saved = json.loads((tiny_contrast / "config.json").read_text())
    assert "cache_dir" not in saved["training"]["options"]  # no machine's paths in the folder
    data = tiny_contrast.parent / "data"
    argv = ["--data", str(data), "--out", str(tiny_contrast), "--report-only", "--no-progress"]
    result = main("contrast", [*argv, "--cache-dir", str(tmp_path)])
    for key, value in result["metrics"].items():
        assert value == pytest.approx(saved["metrics"][key])
    assert list(tmp_path.glob("*.safetensors"))  # decoded into the cache this run was given


def test_split_file_trains_another_input_size_on_the_same_split(
    tiny_contrast: Path, tmp_path: Path
) -> None:
    held = json.loads((tiny_contrast / "split.json").read_text())
    config = json.loads((tiny_contrast / "config.json").read_text())
    assert list(held) == ["val"] and len(held["val"]) == config["training"]["split_counts"]["val"]
    data = tiny_contrast.parent / "data"
    argv = [
        *("--data", str(data), "--arch", "test_resnet", "--no-pretrained", "--size", "48"),
        *("--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress"),
    ]
    out = tmp_path / "other_size"
    main("contrast", [*argv, "--out", str(out), "--split-file", str(tiny_contrast / "split.json")])
    assert json.loads((out / "split.json").read_text()) == held
    assert "split_file" not in json.loads((out / "config.json").read_text())["training"]["options"]

    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"val": [*held["val"], "T2/not_here.png"]}))
    with pytest.raises(InputError, match="made for other data"):
        main("contrast", [*argv, "--out", str(tmp_path / "x"), "--split-file", str(foreign)])


def test_extra_data_only_trains_and_leaves_out_copies_of_held_out_images(tmp_path: Path) -> None:
    data = write_dataset("tumor_detect", tmp_path / "detect", n=6, seed=2, size=64) / "Training"
    extra = write_dataset("tumor44", tmp_path / "t44", n=1, seed=4, size=64)
    shutil.copytree(data / "notumor", extra / "notumor")  # copies of held-out images would leak
    argv = [
        *("--data", str(data), "--arch", "test_resnet", "--no-pretrained", "--size", "32"),
        *("--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress"),
        *("--val-fraction", "0.3"),
    ]
    out = tmp_path / "model"
    main("tumor_detect", [*argv, "--out", str(out), "--extra-data", str(extra)])
    training = json.loads((out / "config.json").read_text())["training"]
    held = json.loads((out / "split.json").read_text())["val"]
    copies = len(list((data / "notumor").iterdir()))
    main_images = training["images"] - 44 - copies  # the 44-class phantom: one image per folder
    assert training["extra_data"] == extra.name
    assert held and not any(f.startswith(extra.name) for f in held)  # extra images never held out
    assert training["split_counts"]["val"] == len(held) < main_images
    left_out = sum(f.startswith("notumor/") for f in held)  # each held-out copy: exactly one
    assert 0 < left_out < copies
    counts = training["split_counts"]
    assert counts["train"] + counts["val"] + left_out == training["images"]
    assert (
        f"training also on {44 + copies - left_out} images of t44 (`--extra-data`, never held "
        f"out; {left_out} near-copies of held-out images left out)"
    ) in (out / "README.md").read_text()
    with pytest.raises(InputError, match="give that folder again with --extra-data"):
        main("tumor_detect", ["--data", str(data), "--out", str(out), "--report-only"])


class Labelled(torch.utils.data.TensorDataset):
    """A dataset with the ``targets`` a :class:`FolderImages` view has."""

    def __init__(self, targets: list[int]) -> None:
        self.targets = torch.tensor(targets)
        super().__init__(torch.zeros(len(targets), 3, 8, 8), self.targets)


class AlwaysFirst(torch.nn.Module):
    """Answers class 0 for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[2.0, 0.0]]).expand(len(x), 2)


def test_hard_examples_are_drawn_more_often_by_hand() -> None:
    view = Labelled([0, 1, 1, 0, 1, 0])
    opts = ClassifierOptions(hard_weight=4.0)
    sampler, hard = sampler_for(opts, AlwaysFirst(), view)
    assert hard == 3 and sampler.num_samples == 6
    assert sampler.weights.tolist() == [1, 5, 5, 1, 5, 1]  # the three wrong ones: 1 + 4
    view = Labelled([0, 1, 1, 1])  # with --balanced-sampler too: 1/2 and 1/3 per class first
    sampler, hard = sampler_for(replace(opts, balanced_sampler=True), AlwaysFirst(), view)
    np.testing.assert_allclose(sampler.weights, [1 / 1, 5 / 3, 5 / 3, 5 / 3])
    assert sampler_for(ClassifierOptions(), AlwaysFirst(), view) == (None, 0)


def test_init_from_starts_each_member_from_the_trained_model(
    tiny_contrast: Path, tmp_path: Path
) -> None:
    source = load_folder(tiny_contrast, "test", torch.device("cpu")).model.state_dict()
    weights = start_weights(str(tiny_contrast), "test_resnet")
    assert weights.keys() == source.keys()
    assert all(torch.equal(weights[k].cpu(), source[k]) for k in source)
    with pytest.raises(InputError, match="holds test_resnet, no resnet50"):
        start_weights(str(tiny_contrast), "resnet50")

    data = tiny_contrast.parent / "data"
    argv = [
        *("--data", str(data), "--arch", "test_resnet", "--no-pretrained", "--size", "64"),
        *("--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress"),
        *("--split-file", str(tiny_contrast / "split.json"), "--hard-weight", "3"),
    ]
    with pytest.raises(InputError, match="--hard-weight needs --init-from"):
        main("contrast", [*argv, "--out", str(tmp_path / "alone")])
    with pytest.raises(InputError, match="is not the model these options build"):
        main("contrast", [*argv, "--out", str(tmp_path / "x"), "--init-from", str(tiny_contrast)])
    out = tmp_path / "tuned"
    argv += ["--head", "none", "--freeze-up-to", "", "--init-from", str(tiny_contrast)]
    main("contrast", [*argv, "--out", str(out)])
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["initialised_from"] == str(tiny_contrast)
    [member] = training["members"]
    # the identical slice filed under both labels: the source cannot be right on both copies
    conflict = json.loads((tiny_contrast / "report.json").read_text())["label_conflicts"][0]
    assert member["hard_examples"] >= (conflict["split"] == "train")
    card = (out / "README.md").read_text()
    assert "drawn 4 times as often" in card and "| hard examples |" in card


def test_weights_are_stored_in_float16_and_load_as_float32(tiny_contrast: Path) -> None:
    with safe_open(str(tiny_contrast / "model.safetensors"), "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert {t.dtype for t in stored.values() if t.ndim > 1} == {torch.float16}
    assert {t.dtype for t in stored.values() if t.ndim == 1} == {torch.float32}
    bundle = load_folder(tiny_contrast, "test", torch.device("cpu"))
    assert all(p.dtype == torch.float32 for p in bundle.model.parameters())


def test_predict_cli_prints_label_and_probabilities(tiny_contrast: Path, shared_data: Path) -> None:
    dicom = shared_data / "dicom" / "pydicom_3.0.2" / "MR_small.dcm"
    png = ROOT / "examples" / "contrast_phantom_T2.png"
    proc = run_cli("predict", "contrast", str(png), str(dicom), "--weights", str(tiny_contrast))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row["probabilities"]) == set(TWO)
        assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
    assert rows[0]["header"] is None and rows[0]["agree"] is None
    assert rows[1]["header"]["contrast"] == "T2"
    assert rows[1]["agree"] == (rows[1]["label"] == "T2")


def test_gradcam_map_covers_the_image_at_its_own_size(tiny_contrast: Path) -> None:
    bundle = load_folder(tiny_contrast, "test", torch.device("cpu"))
    full = load_image(ROOT / "examples" / "contrast_phantom_T1_post.png")
    image = replace(full, pixels=full.pixels[20:220, 40:190])  # not square, not the model's size
    result = classify.classify(bundle, image)
    heat = classify.explain(bundle, image, result.index)
    assert heat.shape == (200, 150)
    assert heat.min() >= 0 and heat.max() == pytest.approx(1)
    assert heat.std() > 0.05  # a map, not a constant


def test_ensemble_folder_votes_through_the_cli(tmp_path: Path) -> None:
    opts = ClassifierOptions(arch=f"{TINY},test_resnet", pretrained=False)
    spec = model_spec(opts, 2)
    model = build_model(spec)
    config = {
        "task": "tumor_detect",
        "title": "tiny ensemble",
        "model": spec,
        "labels": ["no_tumor", "tumor"],
        "preprocess": Preprocess(size=(64, 64), imagenet_norm=True).to_dict(),
    }
    save_pretrained(model, config, tmp_path / "ens", "", dtype=torch.float16)
    image = ROOT / "examples" / "tumor_detect_phantom_glioma.jpg"
    proc = run_cli("predict", "tumor_detect", str(image), "--weights", str(tmp_path / "ens"))
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert row["label"] in {"tumor", "no_tumor"}
    assert [v["model"] for v in row["votes"]] == [TINY, "test_resnet"]
    assert row["voting"] == "hard"
    votes = [v["label"] for v in row["votes"]]
    if votes[0] == votes[1]:  # a majority of two agreeing members decides
        assert row["label"] == votes[0]


# --- several sources: LGG channels as contrasts, per-source splits, unseen patients -----------


def write_lgg_patient(root: Path, patient: str, slices: int, repeat_t1: bool, seed: int) -> None:
    """A kaggle_3m patient whose channels differ (pre T1, FLAIR, post T1), with the first slice
    almost empty; ``repeat_t1`` copies FLAIR into the T1 channel (the dataset's missing T1)."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    folder = root / patient
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:64, :64]
    head = (yy - 32) ** 2 + (xx - 32) ** 2 < 26**2
    for n in range(1, slices + 1):
        image = np.zeros((64, 64, 3), np.uint8)
        if n > 1:  # slice 1: no head in the frame
            for c, level in enumerate((80, 200, 140)):
                image[..., c] = np.where(head, level + rng.integers(0, 30, (64, 64)), 0)
        if repeat_t1:
            image[..., 0] = image[..., 1]
        PILImage.fromarray(image).save(folder / f"{patient}_{n}.tif")
        PILImage.fromarray(np.zeros((64, 64), np.uint8)).save(folder / f"{patient}_{n}_mask.tif")


def test_lgg_channels_become_contrast_images_without_repeats_or_empty_slices(
    tmp_path: Path,
) -> None:
    root = tmp_path / "kaggle_3m"
    write_lgg_patient(root, "TCGA_AA_0001_19990101", 4, repeat_t1=False, seed=0)
    write_lgg_patient(root, "TCGA_BB_0002_19990101", 4, repeat_t1=True, seed=1)
    samples = scan_dataset(root, get_label_map("contrast"))
    by_patient = {
        p: sorted((s.label, s.channel) for s in samples if s.group == p)
        for p in {s.group for s in samples}
    }
    assert by_patient["TCGA_AA_0001_19990101"] == sorted(
        [("T1", 0), ("FLAIR", 1), ("T1C+", 2)] * 3  # slices 2-4; slice 1 holds no head
    )
    assert by_patient["TCGA_BB_0002_19990101"] == sorted([("FLAIR", 1), ("T1C+", 2)] * 3)
    image = load_image(samples[0].path).pixels[..., samples[0].channel]
    cached = FolderImages(samples[:1], ["FLAIR", "T1", "T1C+"], Preprocess(size=(64, 64)), None)
    assert torch.equal(cached.images[0][0], cached.images[0][2])  # one grey channel, repeated
    assert image.ndim == 2


def test_split_file_entries_may_name_a_patient_folder(tmp_path: Path) -> None:
    from workbench.recipes.classifier import read_split_file

    keys = ["a/x.jpg", "kaggle_3m/TCGA_A/TCGA_A_1.tif#1", "kaggle_3m/TCGA_B/TCGA_B_1.tif"]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"val": ["a/x.jpg", "kaggle_3m/TCGA_A"]}))
    assert read_split_file(split, keys) == {"a/x.jpg": "val", keys[1]: "val"}
    split.write_text(json.dumps({"val": ["kaggle_3m/TCGA_Z"]}))
    with pytest.raises(InputError, match="match no image"):
        read_split_file(split, keys)


def test_second_source_is_split_by_patient_and_unseen_patients_never_train(tmp_path: Path) -> None:
    data = write_two_contrasts(tmp_path / "data", n=8, seed=3)
    lgg = tmp_path / "kaggle_3m"
    for i in range(6):
        write_lgg_patient(lgg, f"TCGA_{'FG' if i < 2 else 'CS'}_{i:04d}_19990101", 3, False, i)
    out = tmp_path / "model"
    main(
        "contrast",
        [
            *("--data", str(data), "--more-data", str(lgg), "--unseen", "^TCGA_FG_"),
            *("--arch", "test_resnet", "--no-pretrained", "--size", "32", "--epochs", "1"),
            *("--batch-size", "8", "--threads", "1", "--no-progress", "--val-fraction", "0.3"),
            *("--out", str(out)),
        ],
    )
    held = json.loads((out / "split.json").read_text())
    assert {f.split("/")[2].split("_")[1] for f in held["unseen"]} == {"FG"}
    lgg_val = {f.split("/")[1] for f in held["val"] if f.startswith("kaggle_3m/")}
    assert lgg_val and all("_CS_" in p for p in lgg_val)  # the other source is held out too
    assert any(not f.startswith("kaggle_3m/") for f in held["val"])
    report = json.loads((out / "report.json").read_text())
    rows = {(r["split"], r["source"]) for r in report["by_source"]}
    lgg_rows = {(split, src) for split, src in rows if src.startswith("kaggle_3m")}
    assert rows - lgg_rows == {("val", data.name)}
    assert {split for split, _ in lgg_rows} == {"val", "unseen"}
    alone = {f"kaggle_3m, {sequence} alone" for sequence in KAGGLE_3M_SEQUENCES}
    assert {src for _, src in lgg_rows} <= alone  # each sequence reported apart
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["more_data"] == ["kaggle_3m"]
    assert config["ood"]["fitted_on"]["heldout"] == config["metrics"]["images"]
    # a patient's slices never straddle train and val: every val patient has all its images there
    from workbench.recipes.classifier import split_samples

    train, val = split_samples(out, data, [lgg])
    assert not {s.group for s in train if s.group} & {s.group for s in val if s.group}
    assert not any(s.group.startswith("TCGA_FG_") for s in train + val)


def test_head_window_ignores_how_much_border_a_frame_has() -> None:
    rng = np.random.default_rng(0)
    head = rng.uniform(200, 1200, (48, 48)).astype(np.float32)
    small = np.zeros((64, 64), np.float32)
    small[8:56, 8:56] = head
    big = np.zeros((256, 256), np.float32)
    big[100:148, 100:148] = head * 16  # a 16-bit scanner frame: wide border, other units
    from workbench.transforms.mr import scale_intensity

    a = scale_intensity(small, 0.5, 99.5, True)[8:56, 8:56]
    b = scale_intensity(big, 0.5, 99.5, True)[100:148, 100:148]
    assert np.abs(a - b).max() < 1e-5
    a0 = scale_intensity(small, 0.5, 99.5, False)[8:56, 8:56]
    b0 = scale_intensity(big, 0.5, 99.5, False)[100:148, 100:148]
    assert np.abs(a0 - b0).max() > 0.05  # the frame's percentiles depend on the border


def test_patients_are_groups_even_when_their_slices_look_alike() -> None:
    from workbench.data.folders import Sample
    from workbench.recipes.classifier import source_groups

    same = np.zeros((4, 256), bool)  # four identical hashes
    web = [Sample(Path(f"w{i}.jpg"), "T1") for i in range(2)]
    lgg = [Sample(Path(f"p{i}.tif"), "T1", group=f"TCGA_{i}") for i in range(2)]
    groups = source_groups([web, lgg], same, dup_distance=12)
    assert groups[0] == groups[1]  # web copies stay together
    assert len({groups[0], groups[2], groups[3]}) == 3  # two people are two groups
