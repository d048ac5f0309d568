"""Real scanner MR DICOMs through the MR classifiers: what the image models say, against the header.

    python bench/scanners.py [--weights DIR] [--card]

Every loadable single-frame MR DICOM under ``../shared/data/dicom`` (files with identical pixels,
the same slice in other encodings, counted once) goes through the shipped contrast model and the
detection ensemble. The contrast expected is the header's (``contrast_rules``: TR, TE, TI, agent,
series name); files whose header names no contrast are listed with ``?``. The scans are of
volunteers and phantom-free clinical test files: none is known to hold a tumour, so detection
should answer ``no_tumor`` or "unsure", never a confident ``tumor``. ``--card`` writes the table
into both models' cards ("## Scanner DICOMs"). File names only: no header identifier is printed.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from workbench.cards import markdown_table, put_section
from workbench.errors import InputError
from workbench.io import load_image
from workbench.tasks import get_task
from workbench.tasks.contrast_rules import canonical, header_contrast
from workbench.weights import load_folder

ROOT = Path(__file__).resolve().parents[1]
DICOM = ROOT.parent / "shared" / "data" / "dicom"
TASKS = ("contrast", "tumor_detect")


def scanner_images(root: Path = DICOM) -> list:
    """Loadable single-frame MR DICOMs, one per distinct pixel content, in path order."""
    seen, found = set(), []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in (".md", ".txt"):
            continue
        try:
            image = load_image(path)
        except (InputError, OSError, ValueError):
            continue  # the collection's deliberately broken files
        if image.modality != "MR" or image.frames != 1 or not image.pixels.any():
            continue
        digest = hashlib.sha1(image.pixels.tobytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            found.append((path.relative_to(root).as_posix(), image))
    return found


def verdict(answer: dict) -> str:
    top = answer["probabilities"][answer["label"]]
    text = f"{answer['label']} {top:.2f}"
    return f"unsure ({text})" if answer.get("unsure") else text


def rows(weights: Path) -> tuple[list[dict], dict[str, int]]:
    bundles = {
        t: load_folder(weights / t, f"local: {weights / t}", torch.device("cpu")) for t in TASKS
    }
    table, tally = [], {"known": 0, "right": 0, "unsure": 0, "confident tumour": 0}
    for name, image in scanner_images():
        guess = header_contrast(image.header)
        expected = guess["contrast"] if guess else "?"
        contrast = get_task("contrast").predict(bundles["contrast"], image)
        detect = get_task("tumor_detect").predict(bundles["tumor_detect"], image)
        if guess:
            tally["known"] += 1
            tally["right"] += canonical(contrast["label"]) == expected
        tally["unsure"] += bool(contrast.get("unsure"))
        tally["confident tumour"] += detect["label"] == "tumor" and not detect.get("unsure")
        table.append(
            {
                "file": name,
                "header says": expected,
                "contrast model": verdict(contrast),
                "detection": verdict(detect),
            }
        )
    return table, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=ROOT / "weights")
    parser.add_argument("--card", action="store_true", help="write the table into the cards")
    args = parser.parse_args()
    if not DICOM.is_dir():
        raise SystemExit(f"needs the shared data at {DICOM}")
    torch.set_num_threads(2)
    table, tally = rows(args.weights)
    summary = (
        f"Contrast right on {tally['right']} of {tally['known']} files whose header names the "
        f"contrast ({tally['unsure']} of {len(table)} files unsure); detection confident "
        f"`tumor` on {tally['confident tumour']} of {len(table)} tumour-free scans."
    )
    text = markdown_table(table)
    print(text + "\n\n" + summary)
    if args.card:
        section = (
            "## Scanner DICOMs\n\n"
            "Real MR DICOMs from public test collections (`../shared/data/dicom`, one per "
            "distinct image), none of them in any training set, measured by "
            "`python bench/scanners.py`. The expected contrast is the DICOM header's (TR, TE, TI, "
            "agent, series name); no file is known to show a tumour.\n\n"
            f"{text}\n\n{summary}\n"
        )
        for task in TASKS:
            card = args.weights / task / "README.md"
            card.write_text(put_section(card.read_text(), section))


if __name__ == "__main__":
    main()
