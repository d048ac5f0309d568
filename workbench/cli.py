"""``python -m workbench {predict,inspect,phantom,perfusion}``: thin shells over the tasks.

Every command prints JSON on success. On bad input it prints one line ``error: ...`` on stderr
and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

from workbench.errors import InputError


def _print(obj: object) -> None:
    print(json.dumps(obj, default=str))


def _names(names: list[str], conjunction: str = "and") -> str:
    """``a, b and c``: a list in a sentence."""
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}" if len(names) > 1 else names[0]


def cmd_predict(args: argparse.Namespace) -> None:
    from workbench import weights
    from workbench.tasks import get_task, list_tasks

    spec = get_task(args.task)
    for path in args.inputs:  # read every input before the (slow) model load: fail fast
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file.")
        if zipfile.is_zipfile(path) and not spec.zips:
            zips = _names([t.name for t in list_tasks() if t.zips])
            raise InputError(f"{Path(path).name}: only {zips} read a zip.")
    if (args.masks_out or args.voxel_size) and args.task != "tumor_seg":
        raise InputError("--masks-out and --voxel-size are for tumor_seg.")
    if args.study and args.task != "hemorrhage":
        raise InputError("--study is for hemorrhage: its inputs are one CT study.")
    if args.segment and args.task != "tumor_detect":
        raise InputError("--segment is for tumor_detect: a tumour verdict is then outlined.")
    bundle = weights.load(args.weights or spec.weights_name)
    if args.study:  # the Haemorrhage tab's answer: every input one study, in head order
        from workbench.tasks.hemorrhage import predict_series

        _print(predict_series(bundle, [Path(p) for p in args.inputs]))
        return
    if args.segment:  # the Brain tumour tab's answer: the vote, then the mask of a tumour
        from workbench.tasks.tumor_pipeline import answer

        segmenter = weights.load(get_task("tumor_seg").weights_name)
        for path in map(Path, args.inputs):
            _print(answer(bundle, segmenter, spec.read(path)))
        return
    for path in map(Path, args.inputs):
        if args.task == "tumor_seg":  # its answer, and its masks written beside when asked
            from workbench.tasks.tumor_seg import is_volume, voxel_size

            if is_volume(path):
                voxel = voxel_size(" ".join(map(str, args.voxel_size or ())))
                _print(_segment_volume(bundle, path, args.masks_out, voxel))
                continue
            if args.masks_out:
                _print(_segment_slice(bundle, spec.read(path), path, args.masks_out))
                continue
        _print(spec.answer(bundle, path))


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _segment_slice(bundle, image, path: Path, out: Path) -> dict:
    """One slice's answer, and its mask as ``<stem>_mask.png`` (0 / 255, the input's size)."""
    from workbench.tasks.tumor_seg import mask_png, segment, summarise_mask

    mask = segment(bundle, image)
    out.mkdir(parents=True, exist_ok=True)
    mask_png(mask).save(out / f"{_stem(path)}_mask.png")
    return {
        "source": image.source,
        **summarise_mask(mask, image),
        "model": bundle.config.title,
        "weights": bundle.source,
    }


def _segment_volume(bundle, path: Path, out: Path | None, voxel_mm=None) -> dict:
    """A whole patient: the volume summary, and, given ``out``, the mask as NIfTI on the input's
    grid plus one PNG per slice there."""
    import nibabel as nib

    from workbench.tasks.tumor_seg import mask_nifti, mask_png, read_volume, segment_volume

    with tempfile.TemporaryDirectory(prefix="volume_") as tmp:
        volume = read_volume(path, Path(tmp), voxel_mm)
    result = segment_volume(bundle, volume)
    if out is None:
        return result.summary
    stem = _stem(path)
    out.mkdir(parents=True, exist_ok=True)
    nib.save(mask_nifti(volume, result.mask), out / f"{stem}_mask.nii.gz")
    for k, mask in enumerate(result.mask):
        mask_png(mask).save(out / f"{stem}_{k + 1:03d}_mask.png")
    return result.summary


def cmd_inspect(args: argparse.Namespace) -> None:
    from workbench.io import describe, extract_zip

    path = Path(args.file)
    if not zipfile.is_zipfile(path):
        _print(describe(path))
        return
    files = []
    with tempfile.TemporaryDirectory(prefix="inspect_") as tmp:
        for member in extract_zip(path, Path(tmp)):
            try:
                files.append(describe(member))
            except InputError as err:  # a README or DICOMDIR beside the images
                files.append({"file": member.name, "error": str(err)})
    _print({"file": path.name, "format": "zip", "files": files})


def cmd_phantom(args: argparse.Namespace) -> None:
    from workbench.phantom import write_dataset

    out = write_dataset(args.task, args.out, n=args.n, seed=args.seed)
    _print({"task": args.task, "out": str(out), "n": args.n, "seed": args.seed})


def cmd_perfusion(args: argparse.Namespace) -> None:
    from workbench.perfusion.pipeline import run_perfusion

    summary = run_perfusion(
        args.input, args.out, method=args.method, weights=args.weights, aif_mask=args.aif_mask
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print(summary)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes follow the same one-line contract as bad files."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from workbench.tasks import list_tasks  # cheap: registering a task loads no model code

    tasks = list_tasks()
    width = max(len(t.name) for t in tasks)
    parser = _Parser(
        prog="python -m workbench",
        description="Brain Imaging Workbench (research and teaching only, not for diagnosis).",
        epilog="tasks:\n" + "\n".join(f"  {t.name:<{width}}  {t.title}" for t in tasks),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run a task's model on images; one JSON line per input")
    p.add_argument("task", help=_names([t.name for t in tasks], "or"))
    p.add_argument(
        "inputs",
        nargs="+",
        help="image or DICOM files; hemorrhage: also zipped series; tumor_seg: also whole "
        "patients (a zip of kaggle_3m slices or of a DICOM series, a NIfTI volume); perfusion: "
        "a 4D DSC series (a zip of its DICOM files, a 4D NIfTI)",
    )
    p.add_argument("--weights", help="model folder or Hub repo (default: the task's)")
    p.add_argument(
        "--study",
        action="store_true",
        help="hemorrhage: all inputs are one study; print its answer (maximum over slices) and "
        "each slice's, in head order, as the Haemorrhage tab does",
    )
    p.add_argument(
        "--segment",
        action="store_true",
        help="tumor_detect: outline a tumour verdict with the segmentation model, as the Brain "
        "tumour tab does",
    )
    p.add_argument(
        "--masks-out",
        type=Path,
        help="tumor_seg: write <stem>_mask.png per slice input, <stem>_mask.nii.gz per volume",
    )
    p.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("COLUMN", "ROW", "SLICE"),
        help="tumor_seg: voxel size in mm of a zip of slice pictures (kaggle_3m tifs carry none), "
        "for the volume in ml; a DICOM or NIfTI header's own spacing wins",
    )
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser(
        "inspect", help="what a file is: modality, size, spacing, de-identified header"
    )
    p.add_argument("file", help="an image, DICOM or NIfTI file, or a zip of them")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("phantom", help="write a labelled synthetic dataset in a task's real layout")
    p.add_argument("task", choices=[t.name for t in tasks if t.phantom])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=10, help="patients (or images per class)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_phantom)
    p = sub.add_parser(
        "perfusion", help="Tmax/CBF/CBV/MTT maps (and summary.json) from a 4D DSC series"
    )
    p.add_argument("input", help="DICOM folder, zip of a DICOM series, or 4D NIfTI")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--method",
        default="template",
        help="how Tmax is read: template (default, the least delay bias), osvd, bsvd, ssvd, or "
        "cnn (a trained net; CBF, CBV and MTT then by the template fit)",
    )
    p.add_argument("--weights", help="CNN model folder or Hub repo (method cnn)")
    p.add_argument(
        "--aif-mask",
        type=Path,
        help="NIfTI mask on the series' grid whose voxels give the AIF instead of the automatic "
        "choice (e.g. a written aif_mask.nii.gz, corrected in a viewer)",
    )
    p.set_defaults(func=cmd_perfusion)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    warnings.simplefilter("ignore")  # the contract is JSON or one error line, nothing else
    try:
        args.func(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
