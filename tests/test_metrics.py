"""Every metric against values worked out by hand on small masks and tiny label sets."""

import math

import numpy as np
import pytest

from workbench.errors import InputError
from workbench.metrics import (
    assd,
    classification_summary,
    dice,
    hausdorff,
    jaccard,
    multilabel_auc,
    rsna_weighted_log_loss,
    segmentation_scores,
    summarise,
)


def squares_offset_by_one():
    """A: rows 1-3 × cols 1-3; B: rows 1-3 × cols 2-4 (3×3 squares, one column apart)."""
    a = np.zeros((7, 7), bool)
    b = np.zeros((7, 7), bool)
    a[1:4, 1:4] = True
    b[1:4, 2:5] = True
    return a, b


def test_overlap_of_two_offset_squares():
    a, b = squares_offset_by_one()
    # |A| = |B| = 9, |A∩B| = 3 rows × 2 cols = 6, |A∪B| = 12
    assert dice(a, b) == pytest.approx(2 * 6 / 18)
    assert jaccard(a, b) == pytest.approx(6 / 12)


def test_surface_distances_of_two_offset_squares():
    a, b = squares_offset_by_one()
    # Each boundary is the 8-pixel ring (the centre survives a 4-connected erosion).
    # A's ring → B's ring: (1,1) 1, (1,2) 0, (1,3) 0, (2,1) 1, (2,3) 1 [B's centre; nearest
    # ring pixel is one away], (3,1) 1, (3,2) 0, (3,3) 0: sum 4, max 1. B → A is the mirror: sum 4.
    assert hausdorff(a, b) == 1.0
    assert hausdorff(a, b, percentile=95) == 1.0
    assert assd(a, b) == pytest.approx((4 + 4) / (8 + 8))


def test_spacing_scales_distances_along_its_own_axis():
    a, b = squares_offset_by_one()
    # Rows 2 mm apart: the offset is along columns, so nothing changes.
    assert hausdorff(a, b, spacing=(2.0, 1.0)) == 1.0
    assert assd(a, b, spacing=(2.0, 1.0)) == pytest.approx(0.5)
    # Columns 2 mm apart: the four 1-column distances become 2; the pixel at (2,3) now reaches
    # A/B's ring one row up or down at 1 mm. A → B: 2+0+0+2+1+2+0+0 = 7, B → A also 7.
    assert hausdorff(a, b, spacing=(1.0, 2.0)) == 2.0
    assert assd(a, b, spacing=(1.0, 2.0)) == pytest.approx(14 / 16)


def test_hd95_ignores_a_stray_pixel_that_hd_sees():
    true = np.zeros((5, 12), bool)
    true[1:4, 1:4] = True
    pred = true.copy()
    pred[2, 9] = True  # 6 columns from the nearest true boundary pixel (2,3)
    # pred → true: the 8 ring pixels at 0 and the stray at 6. numpy's linear 95th percentile of
    # 9 sorted values sits at index 0.95 × 8 = 7.6: 0 + 0.6 × (6 - 0) = 3.6. true → pred: all 0.
    assert hausdorff(pred, true) == 6.0
    assert hausdorff(pred, true, percentile=95) == pytest.approx(3.6)
    assert assd(pred, true) == pytest.approx(6 / (9 + 8))
    assert dice(pred, true) == pytest.approx(2 * 9 / (10 + 9))
    assert jaccard(pred, true) == pytest.approx(9 / 10)


def test_hausdorff_and_assd_are_symmetric():
    rng = np.random.default_rng(0)
    a = rng.random((20, 20)) > 0.7
    b = rng.random((20, 20)) > 0.6
    for percentile in (100, 95):
        assert hausdorff(a, b, percentile=percentile) == hausdorff(b, a, percentile=percentile)
    assert assd(a, b, (1.5, 0.5)) == assd(b, a, (1.5, 0.5))


def test_cubes_offset_along_a_thick_axis_in_3d():
    a = np.zeros((6, 5, 5), bool)
    b = np.zeros((6, 5, 5), bool)
    a[1:4, 1:4, 1:4] = True
    b[2:5, 1:4, 1:4] = True  # one slice further along axis 0, which is 2.5 mm thick
    # Boundary: the 26 voxels around each cube's centre. A → B: A's bottom slice (9 voxels)
    # is 2.5 mm from B; the middle slice's 8 ring voxels and the top slice's 8 lie on B's
    # boundary (0); the top slice's centre is B's centre, 1 mm from B's ring in plane.
    # Sum 9 × 2.5 + 1 = 23.5 each way; ASSD = 47 / 52; HD = 2.5.
    spacing = (2.5, 1.0, 1.0)
    assert hausdorff(a, b, spacing) == 2.5
    assert assd(a, b, spacing) == pytest.approx(47 / 52)
    assert dice(a, b) == pytest.approx(2 * 18 / 54)


def test_empty_mask_rule():
    empty = np.zeros((4, 4), bool)
    some = empty.copy()
    some[1, 1] = True
    assert segmentation_scores(empty, empty) == {
        "dice": 1.0,
        "jaccard": 1.0,
        "hd": 0.0,
        "hd95": 0.0,
        "assd": 0.0,
    }
    for pred, true in ((empty, some), (some, empty)):
        scores = segmentation_scores(pred, true)
        assert scores["dice"] == 0.0 and scores["jaccard"] == 0.0
        assert all(math.isnan(scores[k]) for k in ("hd", "hd95", "assd"))
    assert dice(empty, empty, empty_value=0.0) == 0.0


def test_bad_shapes_and_spacing_raise_input_errors():
    with pytest.raises(InputError, match="differ in shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="one spacing per axis"):
        hausdorff(np.ones((3, 3)), np.ones((3, 3)), spacing=(1.0, 1.0, 1.0))


def test_summarise_leaves_undefined_values_out_and_counts_them():
    rows = [
        {"dice": 1.0, "hd": 2.0},
        {"dice": 0.5, "hd": 4.0},
        {"dice": 0.0, "hd": float("nan")},
    ]
    summary = summarise(rows)
    # dice: mean 0.5, population std sqrt(((0.5)^2 + 0 + (0.5)^2) / 3) = sqrt(1/6)
    assert summary["dice"] == pytest.approx((0.5, math.sqrt(1 / 6), 3, 0))
    assert summary["hd"] == pytest.approx((3.0, 1.0, 2, 1))
    assert summary["hd"].mean == 3.0 and summary["hd"].undefined == 1
    only_nan = summarise([{"assd": float("nan")}])["assd"]
    assert math.isnan(only_nan.mean) and only_nan.n == 0 and only_nan.undefined == 1


def test_classification_summary_by_hand():
    labels = ["glioma", "none", "pituitary"]
    y_true = [0, 0, 1, 2]
    y_pred = [0, 1, 1, 1]
    s = classification_summary(y_true, y_pred, labels)
    assert s["accuracy"] == 0.5  # 2 of 4
    # glioma: TP 1, FP 0, FN 1 → P 1, R 1/2, F1 2/3; none: TP 1, FP 2, FN 0 → P 1/3, R 1,
    # F1 1/2; pituitary: never predicted → P 0 (by rule), R 0, F1 0
    assert s["per_class"]["glioma"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert s["per_class"]["none"] == pytest.approx(
        {"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1}
    )
    assert s["per_class"]["pituitary"]["f1"] == 0.0
    assert s["macro"] == pytest.approx({"precision": 4 / 9, "recall": 0.5, "f1": 7 / 18})
    # weighted by support 2, 1, 1: F1 (2·2/3 + 1/2 + 0) / 4 = 11/24
    assert s["weighted"]["f1"] == pytest.approx(11 / 24)
    assert s["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_multilabel_auc_by_hand():
    y_true = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    y_prob = np.array([[0.9, 0.1], [0.4, 0.2], [0.5, 0.3], [0.1, 0.4]])
    auc = multilabel_auc(y_true, y_prob, ["any", "epidural"])
    # positives 0.9, 0.4 vs negatives 0.5, 0.1: of 4 pairs, 0.4 < 0.5 is the only wrong order
    assert auc["any"] == pytest.approx(3 / 4)
    assert math.isnan(auc["epidural"])  # no positive: undefined


def test_rsna_weighted_log_loss_by_hand():
    y_true = np.array([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    y_prob = np.array([[0.8, 0.1, 0.5, 0.0, 0.2, 0.3], [0.1, 0.0, 0.0, 0.0, 0.0, 1.0]])
    eps = 1e-7
    # image 1: 2·(−ln 0.8) + (−ln 0.9) + (−ln 0.5) + (−ln 1) + (−ln 0.8) + (−ln 0.7), over 7
    first = (
        -2 * math.log(0.8)
        - math.log(0.9)
        - math.log(0.5)
        - math.log(1 - eps)
        - math.log(0.8)
        - math.log(0.7)
    ) / 7
    # image 2: 2·(−ln 0.9) + four × (−ln(1 − 1e-7)) + (−ln 1e-7) (the clipped certainty)
    second = (-2 * math.log(0.9) - 4 * math.log(1 - eps) - math.log(eps)) / 7
    assert rsna_weighted_log_loss(y_true, y_prob) == pytest.approx((first + second) / 2)
    # equal weights: the plain mean binary cross-entropy (one `any` term instead of two, over 6)
    plain = ((first * 7 + math.log(0.8)) / 6 + (second * 7 + math.log(0.9)) / 6) / 2
    assert rsna_weighted_log_loss(y_true, y_prob, weights=(1,) * 6) == pytest.approx(plain)
