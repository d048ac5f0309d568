"""MR images of a phantom head through the spin-echo and inversion-recovery signal equations.

Spin echo:           S = PD · (1 − exp(−TR/T1)) · exp(−TE/T2)
Inversion recovery:  S = PD · |1 − 2·exp(−TI/T1) + exp(−TR/T1)| · exp(−TE/T2)

Relaxation times at 1.5 T are rounded literature values kept within their published ranges
(WM ≈ 600/80, GM ≈ 1000/100, CSF 4000/2000, fat 250/70 ms as T1/T2): Bushberg et al., *The
Essential Physics of Medical Imaging* (3rd ed., MR chapter), and Stanisz et al., MRM 54:507 (2005)
for grey matter, white matter and blood (T1 ≈ 1400 ms). Proton densities are relative to CSF.
Gadolinium shortens relaxation linearly in concentration C (mM): 1/T1 = 1/T1₀ + r1·C and
1/T2 = 1/T2₀ + r2·C with r1 ≈ 4.1 and r2 ≈ 4.6 /mM/s for gadopentetate in plasma at 1.5 T
(Rohrer et al., Invest Radiol 40:715, 2005). Normal brain keeps the contrast out (blood-brain
barrier); vessels, sinuses, choroid plexus and tumours that break the barrier take it up.

An acquisition then adds what scanners add: in-plane partial-volume blur, a smooth multiplicative
bias field, Rician noise at a chosen SNR and an arbitrary intensity scale.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from scipy import ndimage

from workbench.errors import InputError
from workbench.phantom.head import Head, Tissue, smooth_field

if TYPE_CHECKING:
    from workbench.phantom.tumor import Tumor


class Relaxation(NamedTuple):
    t1: float  # ms
    t2: float  # ms
    pd: float  # proton density relative to CSF


TISSUES: dict[Tissue, Relaxation] = {
    Tissue.BACKGROUND: Relaxation(1000.0, 1.0, 0.0),
    Tissue.SCALP_FAT: Relaxation(250.0, 70.0, 0.9),
    Tissue.SKULL: Relaxation(300.0, 1.0, 0.05),  # cortical bone: T2 < 1 ms, no signal at TE ≥ 10
    Tissue.CSF: Relaxation(4000.0, 2000.0, 1.0),
    Tissue.GREY: Relaxation(1000.0, 100.0, 0.82),
    Tissue.WHITE: Relaxation(600.0, 80.0, 0.70),
    Tissue.VENTRICLE: Relaxation(4000.0, 2000.0, 1.0),
    # venous blood; the low effective PD stands for the flow-related signal loss of spin echoes
    Tissue.VESSEL: Relaxation(1400.0, 150.0, 0.35),
}
OEDEMA = Relaxation(1150.0, 180.0, 0.86)  # vasogenic: more free water than white matter
CALCIFICATION = Relaxation(500.0, 15.0, 0.2)  # dark on T2, variable and mostly low on T1
GD_UPTAKE: dict[Tissue, float] = {Tissue.VESSEL: 1.5, Tissue.SCALP_FAT: 0.1}  # mM
R1, R2 = 4.1e-3, 4.6e-3  # relaxivities per mM per ms


@dataclass(frozen=True)
class Sequence:
    """Typical 1.5 T parameters (ms); ``ti=None`` on an IR sequence picks TI to null CSF."""

    tr: float
    te: float
    inversion: bool = False
    ti: float | None = None
    contrast: bool = False  # acquired after gadolinium


SEQUENCES: dict[str, Sequence] = {
    "T1": Sequence(tr=500.0, te=15.0),
    "T1C": Sequence(tr=500.0, te=15.0, contrast=True),
    "T2": Sequence(tr=4000.0, te=100.0),
    "FLAIR": Sequence(tr=9000.0, te=120.0, inversion=True),
    "FLAIRC": Sequence(tr=9000.0, te=120.0, inversion=True, contrast=True),
    "PD": Sequence(tr=3000.0, te=15.0),
}


def null_ti(tr: float, t1: float) -> float:
    """The inversion time that nulls a tissue of relaxation time ``t1`` at repetition ``tr``."""
    return float(t1 * np.log(2.0 / (1.0 + np.exp(-tr / t1))))


def signal(seq: Sequence, t1: np.ndarray, t2: np.ndarray, pd: np.ndarray) -> np.ndarray:
    """Noise-free magnitude signal of the spin-echo or inversion-recovery equation."""
    recovery = np.exp(-seq.tr / t1)
    if seq.inversion:
        ti = seq.ti if seq.ti is not None else null_ti(seq.tr, TISSUES[Tissue.CSF].t1)
        longitudinal = np.abs(1.0 - 2.0 * np.exp(-ti / t1) + recovery)
    else:
        longitudinal = 1.0 - recovery
    return pd * longitudinal * np.exp(-seq.te / t2)


def tissue_maps(head: Head, tumor: Tumor | None = None) -> tuple[np.ndarray, ...]:
    """T1, T2, PD and gadolinium concentration (mM) per voxel.

    A subject's tissues differ slightly from the textbook and grey and white matter are not
    uniform; both are drawn from a generator seeded by the head itself, so every sequence of
    one subject sees the same tissue."""
    rng = np.random.default_rng(zlib.crc32(head.labels.tobytes()))
    lut = np.array([TISSUES[t] for t in Tissue], dtype=np.float32)
    lut *= rng.normal(1.0, 0.04, lut.shape).astype(np.float32)
    t1, t2, pd = (lut[head.labels, i] for i in range(3))
    texture = 1.0 + 0.03 * smooth_field(rng, head.shape, (1.0, 5.0, 5.0))
    parenchyma = head.tissue(Tissue.GREY, Tissue.WHITE)
    t1[parenchyma] *= texture[parenchyma]
    pd[parenchyma] *= 2.0 - texture[parenchyma]
    gd = np.zeros(head.shape, dtype=np.float32)
    for tissue, c in GD_UPTAKE.items():
        gd[head.labels == tissue] = c
    if tumor is not None:
        look = tumor.look
        for mask, relax, c in (
            (tumor.oedema, OEDEMA, 0.0),
            (tumor.core, look.core, look.enhancement),
            (tumor.necrosis, look.cavity, 0.0),
            (tumor.calcification, CALCIFICATION, 0.0),
        ):
            t1[mask], t2[mask], pd[mask], gd[mask] = relax.t1, relax.t2, relax.pd, c
        if look.patchiness > -3.0 and tumor.core.any():  # weaker enhancement in patches
            box = ndimage.find_objects(tumor.core.astype(np.uint8))[0]
            patchy = tumor.core[box] & (
                smooth_field(rng, gd[box].shape, (1.0, 4.0, 4.0)) < look.patchiness
            )
            gd[box][patchy] *= 0.3
    return t1, t2, pd, gd


def mr_image(
    head: Head,
    sequence: str,
    rng: np.random.Generator,
    tumor: Tumor | None = None,
    snr: float = 30.0,
    jitter: float = 0.1,
) -> np.ndarray:
    """One acquisition of ``sequence`` (a key of :data:`SEQUENCES`) as float32 (Z, H, W).

    ``snr``: mean brain signal over the noise σ; ``jitter``: relative spread of TR/TE between
    acquisitions, as protocols differ between sites."""
    return mr_images(head, [sequence], rng, tumor, snr, jitter)[sequence]


def mr_images(
    head: Head,
    sequences: list[str],
    rng: np.random.Generator,
    tumor: Tumor | None = None,
    snr: float = 30.0,
    jitter: float = 0.1,
) -> dict[str, np.ndarray]:
    """Several acquisitions of one subject in one session: the tissue maps are computed once."""
    unknown = [s for s in sequences if s not in SEQUENCES]
    if unknown:
        raise InputError(
            f"Unknown MR sequence {unknown[0]!r}; choose one of {', '.join(SEQUENCES)}."
        )
    maps = tissue_maps(head, tumor)
    brain = head.brain_mask
    return {name: _acquire(SEQUENCES[name], maps, brain, rng, snr, jitter) for name in sequences}


def _acquire(seq: Sequence, maps, brain: np.ndarray, rng, snr: float, jitter: float) -> np.ndarray:
    t1, t2, pd, gd = maps
    tr, te = (
        seq.tr * rng.uniform(1 - jitter, 1 + jitter),
        seq.te * rng.uniform(1 - jitter, 1 + jitter),
    )
    seq = Sequence(tr, te, seq.inversion, seq.ti, seq.contrast)
    if seq.contrast:
        t1 = 1.0 / (1.0 / t1 + R1 * gd)
        t2 = 1.0 / (1.0 / t2 + R2 * gd)
    image = signal(seq, t1, t2, pd).astype(np.float32)
    image = ndimage.gaussian_filter(image, (0.0, 0.6, 0.6))
    image *= np.exp(0.12 * smooth_field(rng, image.shape, (4.0, 80.0, 80.0)))
    sigma = float(image[brain].mean() if brain.any() else image.mean()) / snr
    noise = rng.standard_normal((2, *image.shape), dtype=np.float32) * np.float32(sigma)
    image = np.hypot(image + noise[0], noise[1])  # magnitude of complex Gaussian noise: Rician
    return image * np.float32(np.exp(rng.normal(0.0, 0.3)))
