"""The image-classification tasks as data: label map, study recipe, shipped CPU recipe.

Each :class:`ClassifierTask` carries two presets of (:class:`ClassifierOptions`,
:class:`~workbench.training.TrainConfig`): ``study``, the published recipe (the scripts'
default), and ``cpu``, the recipe the shipped weights in ``weights/<task>/`` were trained with on
two CPU cores (``--preset cpu``). Everything else in training is shared code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from workbench.data.folders import split_44_label
from workbench.training import TrainConfig


@dataclass
class ClassifierOptions:
    """Model, data and evaluation options of the classifier recipe."""

    arch: str = "resnet50"  # timm name; comma-separated names train an ensemble of them
    pretrained: bool = True  # ImageNet start (offline for efficientnet_lite0/1/2)
    freeze_up_to: str = ""  # module name or stage:<i> (stage:-1 = last stage's first block)
    head: str = "none"  # hidden units of a dense head before the classifier, or none
    dropout: float = 0.0  # before the last linear layer
    size: int = 224  # square input side in pixels
    foreground: bool = False  # intensity window from the head's percentiles, not the frame's
    augment: str = "none"  # none | affine | affine_flip | affine_flip_style (data.folders.AUGMENTS)
    label_smoothing: float = 0.0  # cross-entropy target smoothing
    class_weighting: bool = False  # inverse-frequency weights in the loss
    balanced_sampler: bool = False  # draw every class equally often
    init_from: str = ""  # a trained model (folder or Hub repo): each member starts from its own
    hard_weight: float = 0.0  # > 0: images the --init-from model gets wrong drawn 1 + this often
    voting: str = "hard"  # ensembles: hard (majority) | soft (mean probability)
    val_fraction: float = 0.15  # held out for early stopping, calibration and the card
    test_fraction: float = 0.0  # > 0 holds out a test split for the report
    dup_distance: int = 12  # dHash bits (of 256) within which images are near-duplicates
    split_file: str = ""  # an earlier run's split.json: train on its split (e.g. another size)
    extra_data: str = ""  # a second dataset folder: training only, never held out
    more_data: str = ""  # further dataset folders (comma-separated), split like --data
    unseen: str = ""  # regex on patient (e.g. ^TCGA_FG_): held out whole, a source never seen
    max_per_class: int = 0  # 0: all images; a small number for quick runs
    cache_dir: str = ""  # keep decoded images here between runs (same files, same size)
    work_dir: str = ""  # checkpoints and curves; default <out>/runs
    threads: int = 0  # torch threads; 0 keeps PyTorch's default
    note: str = ""  # what the card must say about this run (e.g. a schedule changed on resume)

    @property
    def archs(self) -> list[str]:
        return [a.strip() for a in self.arch.split(",") if a.strip()]

    @property
    def more_roots(self) -> list[Path]:
        return [Path(d.strip()) for d in self.more_data.split(",") if d.strip()]

    @property
    def head_hidden(self) -> int | None:
        return None if self.head.lower() in {"", "none", "0"} else int(self.head)


Preset = tuple[ClassifierOptions, TrainConfig]


@dataclass(frozen=True)
class ClassifierTask:
    """What one classification task needs beyond the shared recipe."""

    name: str
    title: str
    label_map: str  # key of workbench.data.folders.LABEL_MAPS
    study: str  # the study's recipe in one paragraph (--help and the card)
    presets: dict[str, Preset]
    dataset: str  # the shipped model's data folder under ../shared/data/datasets
    dataset_title: str
    what: str  # input → output, for the card
    by_group: tuple[str, Callable[[str], str]] | None = None  # accuracy by e.g. contrast
    positive: str | None = None  # binary tasks: class whose misses and false alarms are shown
    notes: str = ""  # limits the card must state
    targets: dict[str, float] = field(default_factory=dict)  # the project's goals, for the card

    def model_title(self, opts: ClassifierOptions) -> str:
        archs = " + ".join(opts.archs)
        kind = f"{opts.voting}-vote ensemble of " if len(opts.archs) > 1 else ""
        return f"{self.title} ({kind}{archs}, {opts.size} px)"

    def data_description(self, data_dir: Path, n: int) -> str:
        if data_dir.name == Path(self.dataset).name:
            return f"{self.dataset_title}: {n} images"
        return f"{data_dir.name}: {n} images"


def _contrast_of_44(label: str) -> str:
    return split_44_label(label)[1] or "unknown"


SOURCE_44 = "Brain Tumor MRI Images 44 Classes (Kaggle, fernando2rad)"
SOURCE_DETECT = "Brain Tumor MRI Dataset (Kaggle, masoudnickparvar), Training folders"

# The shipped CPU recipes share one shape: a pretrained EfficientNet-Lite fine-tuned whole (freezing
# the early blocks trains 1.2-1.6x faster on a CPU but stalled 44-class accuracy at 0.90), AdamW
# with a cosine schedule, few epochs.
_CPU = ClassifierOptions(
    arch="efficientnet_lite0",
    freeze_up_to="",
    dropout=0.2,
    size=224,
    augment="affine",
    label_smoothing=0.1,
    cache_dir="",
    threads=2,
)
_CPU_TRAIN = TrainConfig(
    epochs=4,
    batch_size=32,
    lr=1e-3,
    optimizer="adamw",
    weight_decay=1e-4,
    scheduler="cosine_step",
    monitor="val_accuracy",
    mode="max",
    patience=100,
)

CLASSIFIER_TASKS: dict[str, ClassifierTask] = {
    "contrast": ClassifierTask(
        name="contrast",
        title="MR contrast classifier",
        label_map="contrast",
        study=(
            "The study's recipe: ResNet50 (InceptionV3 the alternative), grey 224×224 slices "
            "repeated to 3 channels, a dense 1024 + dropout + softmax head, backbone frozen up to "
            "the last stage's first block, Adam 1e-3, batch 32, early stopping on validation "
            "accuracy (min_delta 1e-5, patience 7), no flips (the brain is not symmetric)."
        ),
        presets={
            "study": (
                ClassifierOptions(
                    arch="resnet50", freeze_up_to="stage:-1", head="1024", dropout=0.5, size=224
                ),
                TrainConfig(
                    epochs=100,
                    batch_size=32,
                    lr=1e-3,
                    optimizer="adam",
                    monitor="val_accuracy",
                    mode="max",
                    patience=7,
                    min_delta=1e-5,
                ),
            ),
            # Four classes from two sources (--more-data kaggle_3m): about 9,000 training
            # images, so 224 px and 6 epochs to stay near an hour on two cores; the window from
            # the head's percentiles and the scanner augmentation are for other scanners' files.
            "cpu": (
                replace(_CPU, size=224, augment="scanner", foreground=True),
                replace(_CPU_TRAIN, epochs=6),
            ),
        },
        dataset="brain_tumor_mri_44c",
        dataset_title=f"{SOURCE_44}, relabelled by the folder's contrast suffix",
        what=(
            "one MR slice (any picture or DICOM; grey repeated to 3 channels) → its contrast "
            "class, named as the training folders were"
        ),
        notes=(
            "FLAIR is learnt from one source only (the LGG set's FLAIR channel, 5 TCGA "
            "institutions); T2 only from the 44-class teaching images; T1 and T1C+ from both. "
            "So a T2 from a scanner may lean to FLAIR, and the DICOM header check (TR, TE, TI, "
            "series name) is the second opinion the tab shows beside the model. The LGG "
            "channels are 256 px JPEG-compressed slices of 1990s-2000s scanners."
        ),
        targets={"accuracy": 0.995},
    ),
    "tumor_detect": ClassifierTask(
        name="tumor_detect",
        title="Brain tumour detection",
        label_map="tumor_detect",
        study=(
            "The study's recipe: an ensemble of ResNet50, InceptionV3 and InceptionResNetV2 at "
            "256×256, each trained alike (rotation, flips, shifts; Adam 1e-3, batch 30, early "
            "stopping, best validation loss kept), final label by majority vote."
        ),
        presets={
            "study": (
                ClassifierOptions(
                    arch="resnet50,inception_v3,inception_resnet_v2",
                    size=256,
                    augment="affine_flip",
                ),
                TrainConfig(
                    epochs=50,
                    batch_size=30,
                    lr=1e-3,
                    optimizer="adam",
                    monitor="val_loss",
                    mode="min",
                    patience=7,
                ),
            ),
            "cpu": (
                # Freezing to stage 2 here: fine-tuned whole, 3 epochs gave a worse ensemble
                # (99.39 % against 99.63 %) in 1.5x the time. The shipped weights add the
                # 44-class data to training (--extra-data): 4 epochs of 1.8x the images.
                replace(
                    _CPU,
                    arch="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2",
                    freeze_up_to="stage:2",
                    augment="affine_flip",
                ),
                replace(_CPU_TRAIN, epochs=4),
            ),
        },
        dataset="brain_tumor_mri/Training",
        dataset_title=f"{SOURCE_DETECT} (tumour = glioma, meningioma or pituitary)",
        what="one MR slice → `tumor` or `no_tumor`, with each member's vote",
        positive="tumor",
        notes=(
            "The shipped ensemble was fine-tuned for 2 epochs (`--init-from` the previous "
            "ensemble, `--more-data` the LGG set): 2 epochs of the three members are the hour "
            "the CPU budget allows. On LGG slices most misses are the first and last slices of "
            "a tumour, a few pixels of FLAIR signal. Normal scanner slices at the level of the "
            "orbits, and sagittal slices (no training image is sagittal), can still be called "
            "`tumor`: see the scanner DICOM table; the tab's unsure flag catches some of them, "
            "not all."
        ),
        targets={"accuracy": 0.997},
    ),
    "tumor44": ClassifierTask(
        name="tumor44",
        title="44-class brain tumour type and contrast",
        label_map="folder",
        study=(
            "The study's recipe: ResNet-18, SGD lr 0.01, a 70/15/15 train/validation/test split, "
            "input size chosen on validation among 100, 256 and 630 px (630 was best)."
        ),
        presets={
            "study": (
                ClassifierOptions(arch="resnet18", size=630, augment="affine", test_fraction=0.15),
                TrainConfig(
                    epochs=50,
                    batch_size=16,
                    lr=0.01,
                    optimizer="sgd",
                    momentum=0.9,
                    monitor="val_accuracy",
                    mode="max",
                    patience=10,
                ),
            ),
            "cpu": (
                replace(_CPU, size=256, class_weighting=True),
                replace(_CPU_TRAIN, epochs=12),
            ),
        },
        dataset="brain_tumor_mri_44c",
        dataset_title=SOURCE_44,
        what=(
            "one MR slice → one of 44 classes (14 tumour types × T1/T1C+/T2, plus normal T1 and "
            "T2), with the tumour type and the contrast as marginal sums"
        ),
        by_group=("contrast", _contrast_of_44),
        targets={"accuracy": 0.95, "macro_f1": 0.92},
    ),
}
