"""The RSNA loader (dedupe, pivot, stratified split, resampling) and the CT phantom it reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from workbench.ct import needs_rsna_fix, read_ct
from workbench.data.rsna import (
    CSV_NAME,
    IMAGE_DIR,
    LABELS,
    RSNASlices,
    patient_ids,
    read_labels,
    resample,
    scan_rsna,
    stratified_split,
)
from workbench.errors import InputError
from workbench.phantom.ct import ENCODINGS, Geometry, make_ct_study, write_rsna
from workbench.phantom.head import Tissue, make_head
from workbench.transforms.ct import CTPreprocess

SMALL = {"shape": (24, 128, 128), "spacing": (5.0, 1.8, 1.8)}


@pytest.fixture(scope="module")
def rsna_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rsna(tmp_path_factory.mktemp("rsna"), n=4, seed=3, **SMALL)


def test_read_labels_dedupes_and_pivots_a_hand_written_csv(tmp_path: Path) -> None:
    rows = ["ID,Label"]
    truth = {"ID_aaa": [1, 0, 0, 0, 1, 0], "ID_bbb": [0, 0, 0, 0, 0, 0]}  # any, epi, ..., subdural
    for image, values in truth.items():
        for label, value in zip(reversed(LABELS), reversed(values), strict=True):
            rows.append(f"{image}_{label},{value}")
    rows += rows[1:4]  # the released file repeats some rows
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    table = read_labels(tmp_path / "labels.csv")
    assert list(table.columns) == list(LABELS)
    assert list(table.index) == ["ID_aaa", "ID_bbb"]
    assert table.loc["ID_aaa"].tolist() == [1, 0, 0, 0, 1, 0]
    assert table.loc["ID_aaa", "subarachnoid"] == 1 and table.loc["ID_bbb"].sum() == 0


def test_read_labels_rejects_incomplete_or_foreign_rows(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Label\nID_aaa_any,1\nID_aaa_epidural,1\n")
    with pytest.raises(InputError, match="lack one of the six label rows"):
        read_labels(bad)
    bad.write_text("ID,Label\nID_aaa_haematoma,1\n")
    with pytest.raises(InputError, match="unknown label"):
        read_labels(bad)
    bad.write_text("image,target\nx,1\n")
    with pytest.raises(InputError, match="ID,Label"):
        read_labels(bad)
    with pytest.raises(InputError, match="RSNA layout"):
        scan_rsna(tmp_path)


def test_phantom_folder_reads_back_in_the_rsna_layout(rsna_dir: Path) -> None:
    raw = (rsna_dir / CSV_NAME).read_text().splitlines()
    files = sorted((rsna_dir / IMAGE_DIR).glob("ID_*.dcm"))
    assert len(files) == 4 * 24
    assert len(raw) - 1 > 6 * len(files)  # duplicated rows present, as in the real file
    index = scan_rsna(rsna_dir)
    assert sorted(index.ids) == [f.stem for f in files]
    assert index.targets.shape == (96, 6)
    # any is the union of the subtypes, and each listed row agrees with the table
    assert np.array_equal(index.targets[:, 0], index.targets[:, 1:].max(axis=1))
    first = raw[1].split(",")[0].rsplit("_", 1)
    row = index.ids.index(first[0])
    assert index.targets[row, LABELS.index(first[1])] == int(raw[1].split(",")[1])
    # a partial download: only the images on disk are listed
    (rsna_dir / IMAGE_DIR / f"{index.ids[0]}.dcm").rename(rsna_dir / "moved.dcm")
    try:
        assert len(scan_rsna(rsna_dir).ids) == 95
    finally:
        (rsna_dir / "moved.dcm").rename(rsna_dir / IMAGE_DIR / f"{index.ids[0]}.dcm")


def test_stratified_split_keeps_label_shares_and_patients_together() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((600, 6), dtype=np.int8)
    targets[:, 1:] = rng.random((600, 5)) < [0.03, 0.1, 0.1, 0.15, 0.2]
    targets[:, 0] = targets[:, 1:].max(axis=1)
    keep, held = stratified_split(targets, 0.2, seed=1)
    assert len(set(keep) & set(held)) == 0 and len(keep) + len(held) == 600
    assert abs(len(held) - 120) <= 2
    # every label's positives are split about 80/20, the rare epidural ones included
    for col in range(6):
        share = targets[held, col].sum() / targets[:, col].sum()
        assert 0.12 < share < 0.28, (LABELS[col], share)
    groups = np.repeat(np.arange(60), 10)
    keep, held = stratified_split(targets, 0.2, seed=1, groups=groups)
    assert not set(groups[keep]) & set(groups[held])
    assert len(keep) + len(held) == 600


def test_resample_repeats_epidural_and_drops_negatives() -> None:
    targets = np.zeros((100, 6), dtype=np.int8)
    targets[:10, [0, 1]] = 1  # 10 epidural
    targets[10:30, [0, 5]] = 1  # 20 subdural; 70 negatives
    idx = resample(targets, epidural_factor=8, negative_fraction=0.5, seed=0)
    assert (targets[idx, 1] == 1).sum() == 80
    assert (targets[idx, 5] == 1).sum() == 20
    assert (targets[idx, 0] == 0).sum() == 35
    assert np.array_equal(resample(targets), np.arange(100))


def test_phantom_files_carry_real_ct_tags_and_decode_to_hu(rsna_dir: Path) -> None:
    index = scan_rsna(rsna_dir)
    ds = pydicom.dcmread(index.paths[0])
    assert ds.Modality == "CT" and ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.PatientID.startswith("ID_") and len(ds.PatientID) == 12
    assert ds.BitsStored in (12, 16) and ds.RescaleSlope == 1
    assert len(ds.ImagePositionPatient) == 3 and ds.WindowCenter == 40
    # one patient, one series, z stepping by the slice thickness
    patients = patient_ids(index.paths)
    assert len(set(patients)) == 4
    image = read_ct(index.paths[0])
    assert image.modality == "CT" and -1100 < image.pixels.min() < -900
    assert 700 < image.pixels.max() <= 2100
    x, y = RSNASlices(index.paths[:2], index.targets[:2], CTPreprocess(size=(64, 64)))[1]
    assert x.shape == (3, 64, 64) and y.tolist() == index.targets[1].tolist()


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_every_encoding_round_trips_through_the_reader(name: str, tmp_path: Path) -> None:
    """Stored values written by each scanner encoding, the wrapped one included, read back as
    the HU they came from (the wrapped file only through the RSNA fix)."""
    from workbench.phantom.ct import slice_dataset

    enc = ENCODINGS[name][0]
    values = np.array([[-1000, -100, 0, 15], [30, 45, 75, 1800]], dtype=np.float32)
    hu = np.tile(values, (4, 2))  # 8 × 8: the reader's smallest image
    ds = slice_dataset(
        enc.stored(hu),
        enc,
        image_id="ID_0123456789",
        patient_id="ID_abc",
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        index=0,
        z=10.0,
        spacing=(5.0, 1.0, 1.0),
    )
    path = tmp_path / "ID_0123456789.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = read_ct(path)
    assert needs_rsna_fix(image.header) == enc.wraps
    assert np.array_equal(image.pixels, hu)
    assert image.header["ImagePositionPatient"][2] == 10.0


def test_phantom_bleeds_appear_where_and_as_they_really_do() -> None:
    """Each subtype alone, in a head drawn with the same seed as its bleed-free twin."""
    for k, kind in enumerate(LABELS[1:]):
        seed = 100 + k
        study = make_ct_study(np.random.default_rng(seed), **SMALL, prevalence={kind: 1.0})
        assert kind in study.masks, kind
        mask = study.masks[kind]
        col = LABELS.index(kind)
        shown = mask.any(axis=(1, 2))
        assert np.array_equal(study.labels[:, col].astype(bool), shown)
        assert np.array_equal(study.labels[:, 0], study.labels[:, col])
        head = make_head(np.random.default_rng(seed), **SMALL)
        geo = Geometry.of(head)
        depth = geo.depth[mask]
        if kind in ("epidural", "subdural"):  # extra-axial: against the inner table
            assert depth.min() < 2.0 and np.percentile(depth, 90) < 20.0, kind
            side = np.broadcast_to(geo.side, mask.shape)[mask]
            assert (side > 0).all() or (side < 0).all(), kind  # one side of the falx
        if kind == "intraventricular":
            assert np.all(head.labels[mask] == Tissue.VENTRICLE)
        if kind == "subarachnoid":
            assert np.all(head.labels[mask] == Tissue.CSF)
        if kind == "intraparenchymal":
            assert np.all(np.isin(head.labels[mask], [Tissue.GREY, Tissue.WHITE]))
            assert depth.min() > 5.0  # inside the brain, not on its surface
        # acute blood: 50-90 HU on average, after blur and noise
        assert 45 < float(np.median(study.hu[mask])) < 95, kind
    # the lens is thicker for its extent than the crescent
    epi = make_ct_study(np.random.default_rng(100), **SMALL, prevalence={"epidural": 1.0})
    sub = make_ct_study(np.random.default_rng(104), **SMALL, prevalence={"subdural": 1.0})
    epi_geo = Geometry.of(make_head(np.random.default_rng(100), **SMALL))
    sub_geo = Geometry.of(make_head(np.random.default_rng(104), **SMALL))
    epi_ratio = epi_geo.depth[epi.masks["epidural"]].max() / epi.masks["epidural"].any(0).sum()
    sub_ratio = sub_geo.depth[sub.masks["subdural"]].max() / sub.masks["subdural"].any(0).sum()
    assert epi_ratio > sub_ratio


def test_tissue_hounsfield_units_match_head_ct() -> None:
    rng = np.random.default_rng(7)
    study = make_ct_study(rng, **SMALL, prevalence={})
    head = make_head(np.random.default_rng(7), **SMALL)
    assert not study.labels.any()

    def median(*tissues: Tissue) -> float:
        """Median HU away from tissue borders, where blur mixes neighbours (partial volume)."""
        interior = ndimage.binary_erosion(head.tissue(*tissues), np.ones((1, 3, 3)))
        return float(np.median(study.hu[interior]))

    assert -1010 < median(Tissue.BACKGROUND) < -990
    assert -115 < median(Tissue.SCALP_FAT) < -85
    assert -3 < median(Tissue.VENTRICLE) < 18
    assert 18 < median(Tissue.WHITE) < 33 and 32 < median(Tissue.GREY) < 48
    assert median(Tissue.GREY) > median(Tissue.WHITE)
    assert 700 < median(Tissue.SKULL) < 2000


def test_read_slices_expands_zips_and_skips_what_is_not_ct(rsna_dir: Path, tmp_path: Path) -> None:
    import zipfile

    from workbench.tasks.hemorrhage import most_suspicious, read_slices

    index = scan_rsna(rsna_dir)
    patients = patient_ids(index.paths)
    one = [p for p, who in zip(index.paths, patients, strict=True) if who == patients[0]]
    other = next(p for p, who in zip(index.paths, patients, strict=True) if who != patients[0])
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in one[:3]:
            zf.write(path, f"study/{path.name}")
        zf.writestr("study/DICOMDIR.txt", "an index, not an image")
    images, skipped = read_slices([archive, one[3]], tmp_path / "work")
    assert [im.source for im in images] == [p.name for p in one[:3]] + [one[3].name]
    assert skipped == ["DICOMDIR.txt"]
    # Another patient's slice in the same upload: refused, without naming anyone.
    with pytest.raises(InputError, match="mixes 2 series") as err:
        read_slices([archive, other], tmp_path / "work3")
    assert patients[0] not in str(err.value) and other.name not in str(err.value)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(InputError, match="no CT slice found"):
        read_slices([empty], tmp_path / "work2")
    # highest `any` first; a tie is broken by the strongest subtype
    probs = np.array([[0.2, 0, 0, 0, 0, 0], [0.9, 0.1, 0, 0, 0, 0], [0.9, 0, 0, 0.8, 0, 0]])
    assert most_suspicious(probs) == 2
