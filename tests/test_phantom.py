"""The procedural head, tumours and MR physics of the phantom."""

import math

import numpy as np
import pytest
from scipy import ndimage

from workbench.errors import InputError
from workbench.phantom.head import Tissue, make_head
from workbench.phantom.mr import SEQUENCES, Sequence, mr_image, null_ti, signal
from workbench.phantom.tumor import TUMOR_KINDS, make_tumor

SMALL = {"shape": (30, 96, 96), "spacing": (4.5, 2.4, 2.4)}  # the full field of view, coarse


@pytest.fixture(scope="module")
def head():
    return make_head(np.random.default_rng(0), **SMALL)


def test_head_has_every_tissue_in_anatomical_order(head):
    assert head.labels.dtype == np.uint8 and head.labels.shape == SMALL["shape"]
    assert set(np.unique(head.labels)) == {int(t) for t in Tissue}
    assert not head.labels[:, 0, 0].any()  # air in the corners
    assert (head.brain_mask <= head.intracranial).all()
    # the brain is wrapped in skull: along a row through the centre, skull comes before brain
    k = round(head.landmarks["centre"][0])
    row = head.labels[k, SMALL["shape"][1] // 2]
    first = {t: int(np.argmax(row == t)) for t in (Tissue.SCALP_FAT, Tissue.SKULL, Tissue.GREY)}
    assert first[Tissue.SCALP_FAT] < first[Tissue.SKULL] < first[Tissue.GREY]
    # ventricles sit deep, with white matter between them and the skull
    ventricle = head.tissue(Tissue.VENTRICLE)
    assert ventricle[k - 2 : k + 3].any()


def test_full_stack_reaches_the_skull_base_landmarks(head):
    for name in ("vertex", "sella", "cpa_left", "cpa_right", "fourth_ventricle", "pineal"):
        z, r, c = head.landmarks[name]
        assert 0 <= z < SMALL["shape"][0] and 0 <= r < 96 and 0 <= c < 96, name


def test_consecutive_slices_change_smoothly(head):
    brain = head.brain_mask
    areas = brain.sum((1, 2))
    mid = [k for k in range(1, len(areas)) if areas[k] > 0.5 * areas.max() and areas[k - 1] > 0]
    dice = [2 * (brain[k] & brain[k - 1]).sum() / (areas[k] + areas[k - 1]) for k in mid]
    assert min(dice) > 0.8


def test_heads_are_deterministic_per_seed_and_differ_between_seeds(head):
    again = make_head(np.random.default_rng(0), **SMALL)
    other = make_head(np.random.default_rng(1), **SMALL)
    assert np.array_equal(head.labels, again.labels)
    inside = (head.labels > 0) | (other.labels > 0)
    assert (head.labels != other.labels)[inside].mean() > 0.2


def test_spin_echo_and_inversion_recovery_match_hand_computed_values():
    # S = PD (1 - exp(-TR/T1)) exp(-TE/T2) = 0.7 · (1 - e^-0.8333) · e^-0.1875 = 0.32811
    t1 = signal(Sequence(tr=500.0, te=15.0), np.float64(600.0), np.float64(80.0), np.float64(0.7))
    assert t1 == pytest.approx(0.32811, abs=1e-4)
    # TI nulling CSF (T1 = 4000 ms) at TR = 9000 ms: T1 · ln(2 / (1 + e^-2.25)) = 2371.7 ms
    assert null_ti(9000.0, 4000.0) == pytest.approx(2371.7, abs=0.5)
    flair = Sequence(tr=9000.0, te=120.0, inversion=True)
    assert signal(flair, np.float64(4000.0), np.float64(2000.0), np.float64(1.0)) == pytest.approx(
        0.0, abs=1e-9
    )
    # white matter: |1 - 2 e^(-2371.7/600) + e^-15| · e^(-120/80) · 0.7
    #             = 0.96159 · 0.22313 · 0.7 = 0.15019
    assert signal(flair, np.float64(600.0), np.float64(80.0), np.float64(0.7)) == pytest.approx(
        0.15019, abs=1e-4
    )


def _means(image, labels, mask=None):
    tissues = (
        Tissue.VENTRICLE,
        Tissue.GREY,
        Tissue.WHITE,
    )  # ventricles: CSF without partial volume
    out = {t: float(image[labels == t].mean()) for t in tissues}
    if mask is not None:
        out["lesion"] = float(image[mask].mean())
    return {k: v / out[Tissue.WHITE] for k, v in out.items()}  # the scale of an image is arbitrary


def test_tissue_contrast_of_each_sequence(head):
    rng = np.random.default_rng(0)
    t1, t2, flair = (
        _means(mr_image(head, s, rng, snr=200), head.labels) for s in ("T1", "T2", "FLAIR")
    )
    assert t1[Tissue.VENTRICLE] < t1[Tissue.GREY] < 1.0  # T1: CSF dark, white matter brightest
    assert t2[Tissue.VENTRICLE] > t2[Tissue.GREY] > 1.0  # T2: CSF bright, grey above white
    assert flair[Tissue.VENTRICLE] < 0.3 and flair[Tissue.GREY] > 1.0  # FLAIR: CSF nulled


def test_enhancing_tumour_brightens_after_gadolinium_and_oedema_is_flair_bright(head):
    rng = np.random.default_rng(2)
    tumor = make_tumor(head, rng, "meningioma")
    pre, post, flair = (
        _means(mr_image(head, s, rng, tumor=tumor, snr=200), head.labels, tumor.core)
        for s in ("T1", "T1C", "FLAIR")
    )
    assert post["lesion"] > 1.5 * pre["lesion"]
    gbm = make_tumor(head, np.random.default_rng(3), "glioblastoma")
    flair = _means(mr_image(head, "FLAIR", rng, tumor=gbm, snr=200), head.labels, gbm.oedema)
    assert flair["lesion"] > 1.5


def test_mr_images_are_reproducible_and_noisy_as_asked(head):
    a = mr_image(head, "T2", np.random.default_rng(5), snr=20)
    b = mr_image(head, "T2", np.random.default_rng(5), snr=20)
    assert a.dtype == np.float32 and a.shape == head.shape and np.array_equal(a, b)
    air = a[:, :4, :4]  # Rician noise in air: mean σ·√(π/2), so never zero
    assert air.mean() > 0
    with pytest.raises(InputError):
        mr_image(head, "DWI", np.random.default_rng(0))


@pytest.mark.parametrize("kind", sorted(TUMOR_KINDS))
def test_every_tumour_kind_is_placed_inside_the_skull(head, kind):
    tumor = make_tumor(head, np.random.default_rng(7), kind)
    assert tumor.mask.any(), kind
    assert (tumor.mask <= head.intracranial).all()
    assert not (tumor.oedema & tumor.mask).any()
    assert (tumor.flair_mask == (tumor.mask | tumor.oedema)).all()
    assert (tumor.oedema <= head.tissue(Tissue.WHITE)).all()
    # a tumour occupies consecutive slices
    slices = np.flatnonzero(tumor.mask.any((1, 2)))
    if TUMOR_KINDS[kind].count == (1, 1):
        assert np.array_equal(slices, np.arange(slices[0], slices[-1] + 1))


def test_tumour_sites_follow_their_kind(head):
    rng = np.random.default_rng(11)
    sella = np.array(head.landmarks["sella"])
    centroid = np.argwhere(make_tumor(head, rng, "pituitary").mask).mean(0)
    assert np.linalg.norm((centroid - sella) * head.spacing) < 15.0
    # a meningioma touches the inner table; a glioma grows in the white matter
    meningioma = make_tumor(head, rng, "meningioma").mask
    skull = ndimage.binary_dilation(~head.intracranial, np.ones((1, 3, 3), bool))
    assert (meningioma & skull).any()
    astro = make_tumor(head, rng, "astrocytoma")
    assert (astro.mask <= head.intracranial).all() and not (
        astro.mask & head.tissue(Tissue.VENTRICLE)
    ).any()
    assert head.tissue(Tissue.WHITE, Tissue.GREY)[astro.mask].mean() > 0.6


def test_unknown_tumour_kind_is_refused(head):
    with pytest.raises(InputError, match="Unknown tumour kind"):
        make_tumor(head, np.random.default_rng(0), "banana")


def test_mr_sequences_cover_the_study_contrasts():
    assert {"T1", "T1C", "T2", "FLAIR", "FLAIRC"} <= set(SEQUENCES)
    assert math.isclose(SEQUENCES["T1C"].tr, SEQUENCES["T1"].tr) and SEQUENCES["T1C"].contrast
