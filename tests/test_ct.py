"""CT windows and the RSNA wrap fix, checked against values worked out by hand.

The real head CTs come from ``../shared/data/dicom``: their stored values are read raw with
pydicom, rescaled here by hand, and a few pixels' window values are computed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from workbench.ct import (
    WINDOWS,
    Window,
    apply_window,
    fix_rsna_wrap,
    hounsfield,
    needs_rsna_fix,
    window_stack,
)
from workbench.errors import InputError
from workbench.io import read_dicom


def test_window_maps_level_and_edges_by_hand() -> None:
    brain = WINDOWS["brain"]  # 40/80: 0 HU → 0, 40 → 0.5, 80 → 1
    hu = np.array([-1000.0, 0.0, 20.0, 40.0, 60.0, 80.0, 1000.0])
    assert np.allclose(apply_window(hu, brain), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    subdural = WINDOWS["subdural"]  # 80/200: −20 → 0, 130 → 0.75
    assert np.allclose(apply_window(np.array([-20.0, 130.0]), subdural), [0, 0.75])
    bone = WINDOWS["bone"]  # 600/2800: −800 → 0, 1300 → 0.75
    assert np.allclose(apply_window(np.array([-800.0, 1300.0]), bone), [0, 0.75])
    assert Window(40, 380).low == -150 and Window(40, 380).high == 230


def test_window_stack_orders_channels_and_rejects_unknown_names() -> None:
    hu = np.full((2, 3), 60.0)
    stack = window_stack(hu)  # brain, subdural, soft tissue
    assert stack.shape == (2, 3, 3)
    assert np.allclose(stack[0, 0], [0.75, 0.4, (60 + 150) / 380])
    with pytest.raises(InputError, match="unknown CT window 'lung'"):
        window_stack(hu, ["brain", "lung"])


def test_rsna_fix_undoes_the_wrap_by_hand() -> None:
    # A wrapped file stores HU mod 4096 with intercept 1: air (−1000 HU) was stored as 3096.
    header = {"BitsStored": 12, "PixelRepresentation": 0, "RescaleIntercept": 1, "RescaleSlope": 1}
    assert needs_rsna_fix(header)
    stored = np.array([3096, 3996, 0, 40, 80, 1500])  # air, fat, water, brain, blood, bone
    naive = stored * 1.0 + 1  # what the reader's rescale gives
    fixed = hounsfield(naive, header)
    assert np.array_equal(fixed, [-1000, -100, 0, 40, 80, 1500])
    # Files without the quirk are left alone.
    for other in (
        {**header, "RescaleIntercept": -1024},
        {**header, "BitsStored": 16},
        {**header, "PixelRepresentation": 1},
        {},
    ):
        assert not needs_rsna_fix(other)
        assert np.array_equal(hounsfield(naive, other), naive)
    # Slope 2: "HU" 6193 is stored 3096, +1000 wraps to 0 → −1000; stored 20 → 1020 × 2 − 1000.
    assert np.array_equal(fix_rsna_wrap(np.array([6193.0, 41.0]), 2, 1), [-1000, 1040])


REAL_CT = [
    "DICOMSamples/CT_Explicit_Little.dcm",
    "pydicom_3.0.2/693_J2KI.dcm",
    "pydicom_3.0.2/J2K_pixelrep_mismatch.dcm",
    "pydicom_3.0.2/dicomdirtests_CT2_head/17106",
]


@pytest.mark.parametrize("name", REAL_CT)
def test_windows_of_real_head_ct_match_hand_computed_values(shared_data: Path, name: str) -> None:
    path = shared_data / "dicom" / name
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(np.float64)  # stored values, before any rescale
    hu_by_hand = raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = read_dicom(path)
    assert image.modality == "CT"
    hu = hounsfield(image.pixels, image.header)
    assert np.array_equal(hu, hu_by_hand)  # none of these files has the RSNA quirk
    stack = window_stack(hu)
    h, w = raw.shape
    for r, c in [(h // 2, w // 2), (h // 4, w // 2), (h // 2, w // 4), (0, 0)]:
        v = hu_by_hand[r, c]
        expected = [
            min(max((v - 0) / 80, 0), 1),  # brain: 40 ∓ 40
            min(max((v + 20) / 200, 0), 1),  # subdural: 80 ∓ 100
            min(max((v + 150) / 380, 0), 1),  # soft tissue: 40 ∓ 190
        ]
        assert np.allclose(stack[r, c], expected, atol=1e-6), (r, c, v)


def test_known_pixels_of_the_real_head_ct(shared_data: Path) -> None:
    """Literal values: the centre of CT_Explicit_Little is brain (38 HU, slope 1, intercept 0);
    17106's centre stores 52 with intercept −1024, i.e. −972 HU (air in the downsized slice)."""
    big = read_dicom(shared_data / "dicom/DICOMSamples/CT_Explicit_Little.dcm")
    stack = window_stack(hounsfield(big.pixels, big.header))
    assert np.allclose(stack[256, 256], [38 / 80, 58 / 200, 188 / 380])
    small = read_dicom(shared_data / "dicom/pydicom_3.0.2/dicomdirtests_CT2_head/17106")
    hu = hounsfield(small.pixels, small.header)
    assert hu[8, 8] == -972
    assert np.allclose(window_stack(hu)[8, 8], [0, 0, 0])
    assert hu[12, 8] == 236 - 1024 and hu[0, 0] == 1100 - 1024  # 76 HU: inside the brain window
    assert np.isclose(window_stack(hu)[0, 0, 0], 76 / 80)
