"""Pictures for people: what they must show, checked on the pixels."""

from __future__ import annotations

import numpy as np

from workbench.render import overlay_mask, probability_bars

RED = np.array([0xC0, 0x39, 0x2B])  # a positive label's bar


def _count(rgb: np.ndarray, colour: np.ndarray) -> int:
    return int((np.abs(rgb.astype(int) - colour).sum(axis=-1) < 12).sum())


def test_bars_over_the_threshold_are_marked_and_the_threshold_is_drawn() -> None:
    some = probability_bars({"any": 0.92, "epidural": 0.08}, 0.5, "one positive")
    none = probability_bars({"any": 0.30, "epidural": 0.08}, 0.5, "none positive")
    assert some.dtype == np.uint8 and some.shape[-1] == 3
    assert _count(some, RED) > 500 and _count(none, RED) == 0

    # the dashed threshold line: a column of dark pixels that moves with the threshold (the
    # axis' own spines stay where they are)
    def lines(rgb: np.ndarray) -> set[int]:
        dark = (rgb.sum(axis=-1) < 100).sum(axis=0)
        return set(np.nonzero(dark > rgb.shape[0] * 0.2)[0].tolist())

    moved = lines(probability_bars({"any": 0.30, "epidural": 0.08}, 0.8, "none positive"))
    assert lines(none) != moved and lines(none) - moved


def test_mask_overlay_keeps_the_slice_outside_the_mask() -> None:
    rgb = np.full((20, 20, 3), 100, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    out = overlay_mask(rgb, mask)
    assert (out[~mask] == 100).all()
    assert (out[5, 5] == (255, 60, 60)).all()  # the outline in the mask's colour
    assert out[10, 10, 0] > 100 > out[10, 10, 1]  # the fill: translucent red


def test_small_pictures_are_enlarged_voxel_by_voxel_and_large_ones_kept() -> None:
    from workbench.render import DISPLAY, enlarge

    small = np.arange(64 * 48 * 3, dtype=np.uint8).reshape(64, 48, 3)
    big = enlarge(small)
    assert big.shape == (256, 192, 3) and max(big.shape[:2]) >= DISPLAY
    assert np.array_equal(big[::4, ::4], small)  # every voxel repeated 4 × 4, none blended
    large = np.zeros((300, 200, 3), np.uint8)
    assert enlarge(large).shape == large.shape
