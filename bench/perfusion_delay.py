"""Tmax accuracy of the SVD methods on DSC curves with continuous, known delays and the true AIF.

    python bench/perfusion_delay.py [--patients 64] [--voxels 400] [--snr 50] [--seed 0]

Truth. Each simulated "patient" has one arterial input function (the phantom's gamma variate with
recirculation, bolus onset drawn in 6–12 s, :func:`workbench.phantom.perfusion.arterial_input`)
and ``--voxels`` tissue voxels, grey or white matter (GM 55 ml/100 g/min and 4.5 ml/100 g, WM
22 and 2.2). Every voxel's delay is drawn uniformly in −3..12 s, continuous, so it falls anywhere
between two samples. Voxels delayed by more than 2 s are hypoperfused: CBF times a fraction
drawn once per patient in 0.35–0.7 (CBV kept, so MTT rises) and, in the dispersion table, the
bolus spread by a unit-area exponential with a time constant drawn once per patient in 1–3 s.
Tissue ΔR2*(t) = CBF/k · (AIF ⊗ h)(t − delay), ``h`` = dispersion ⊗ exp(−t/MTT), computed on a
50 ms grid and sampled every TR = 1.5 s (:func:`workbench.phantom.perfusion.tissue_response`,
the phantom's own model). The **true Tmax is the time of the maximum of the delayed residue
function relative to the AIF: the imposed delay, plus, with dispersion, the time at which
``h`` peaks** (``ln(MTT/τ)·MTT·τ/(MTT − τ)``, about 2–6.5 s for τ = 1–3 s and the lesion's
MTT of 7–17 s; 0 without dispersion, where the truth is exactly the delay). Classes are by true
Tmax: normal < 2 s, penumbra 2–6 s, lesion > 6 s.

Signal and pipeline. ``S = S0·exp(−TE·ΔR2*)`` (S0: GM 600, WM 480, the phantom's baselines) with
Rician noise of sigma 600/SNR (SNR 50: the phantom's default); then the project's own code path:
:func:`workbench.perfusion.signal.bolus_arrival` and :func:`~workbench.perfusion.signal.delta_r2`
to ΔR2*, :func:`workbench.perfusion.deconvolve` with each of ``METHODS`` for Tmax (its
``Residue.delay``, what ``compute_maps`` writes). The AIF is the true, noise-free arterial ΔR2*
sampled at the TR, so the AIF selection plays no part. "truth on the TR grid" is the truth rounded
to the nearest sample: the error any estimator restricted to multiples of the TR cannot beat.

Columns: mean absolute error of Tmax (s) per class; bias, the mean signed error (Tmax − truth)
over all voxels; the share of penumbra voxels read above 6 s; the Dice of Tmax > 6 s against
true Tmax > 6 s.

Two more rows try to remove the bias (the issue's second part). ``onset`` is the oSVD residue's
half-rise time (:attr:`workbench.perfusion.Residue.onset`, ``deconvolve(..., onset=True)``): where
CBF·R(t) last rises through half its peak before the peak, linear between samples. Truncation
blurs the residue's sharp start and moves its peak late; the half-rise stays near the start. It is
the delay's estimate, so it reads dispersed voxels early (their true peak comes later). The last
row is a linear correction ``b0 + b1·onset + b2·Tmax`` fitted by least squares on oSVD over both
tables' cases drawn from seed + 1 (a different set of patients and voxels, never the reported
ones), then applied to the reported seed.

Last run (``python bench/perfusion_delay.py``: seed 0, 64 patients × 400 voxels, SNR 50)::

    no dispersion, SNR 50, seed 0: 25,600 voxels (8,454 normal, 6,921 penumbra, 10,225 lesion)

    | method | MAE normal s | MAE penumbra s | MAE lesion s | bias s | penumbra > 6 s | Dice > 6 s |
    |---|---|---|---|---|---|---|
    | truth on the TR grid | 0.37 | 0.39 | 0.37 | +0.00 | 0.0 % | 0.933 |
    | ssvd | 2.17 | 4.12 | 4.16 | +3.43 | 59.0 % | 0.827 |
    | bsvd | 2.80 | 5.77 | 5.53 | +4.55 | 60.5 % | 0.816 |
    | osvd | 2.98 | 4.15 | 4.13 | +3.76 | 74.9 % | 0.797 |
    | osvd half-rise (`onset`) | 0.99 | 0.93 | 0.93 | -0.70 | 4.3 % | 0.917 |
    | learnt -0.14 +0.68·onset +0.34·Tmax (seed 1) | 0.48 | 1.17 | 1.26 | +0.79 | 27.2 % | 0.909 |

    dispersion τ 1–3 s, SNR 50, seed 0: 25,600 voxels (8,455 normal, 663 penumbra, 16,482 lesion)

    | method | MAE normal s | MAE penumbra s | MAE lesion s | bias s | penumbra > 6 s | Dice > 6 s |
    |---|---|---|---|---|---|---|
    | truth on the TR grid | 0.37 | 0.38 | 0.38 | -0.01 | 0.0 % | 0.972 |
    | ssvd | 2.18 | 2.11 | 2.71 | +2.19 | 50.5 % | 0.968 |
    | bsvd | 2.79 | 3.92 | 4.64 | +3.44 | 52.6 % | 0.958 |
    | osvd | 2.98 | 2.31 | 2.21 | +2.41 | 77.5 % | 0.981 |
    | osvd half-rise (`onset`) | 0.99 | 2.57 | 3.07 | -2.32 | 1.8 % | 0.834 |
    | learnt -0.14 +0.68·onset +0.34·Tmax (seed 1) | 0.49 | 1.24 | 1.48 | -0.72 | 9.2 % | 0.936 |

All three SVD methods read Tmax late everywhere, by 2–4.5 s on average (the issue's finding),
with the true AIF: the AIF selection plays no part. Noise-free the oSVD bias is already
+1.6–2.3 s (truncation low-passes the residue's sharp onset and moves its peak later); SNR 50
adds to it (oSVD keeps fewer components in noisier, lower-flow voxels). None meets all the targets
(MAE ≤ 1.0 s normal and ≤ 1.5 s lesion, Dice of Tmax > 6 s ≥ 0.90, in both tables); on the TR grid
alone the floor is 0.37 s. With dispersion most hypoperfused voxels' truth lies far above 6 s,
so Dice is high there although the errors are not small. The half-rise alone meets the targets
without dispersion only. The learnt correction meets them in both tables (0.48 / 1.26 s, Dice
0.909; 0.49 / 1.48 s, Dice 0.936), narrowly, on this simulator only: one AIF shape, TR 1.5 s and
oSVD's default OI threshold, with which the coefficients would change. It still reads 27 % of
the undispersed penumbra above 6 s (the delay and the dispersion cannot be told apart from these
two numbers: +0.79 s without, −0.72 s with dispersion), so it is not in the maps.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

from workbench.perfusion import METHODS, PerfusionConfig, deconvolve
from workbench.perfusion.signal import bolus_arrival, delta_r2
from workbench.phantom.head import Tissue
from workbench.phantom.perfusion import (
    BASELINE,
    PHYSIOLOGY,
    DscSpec,
    TissuePerfusion,
    arterial_input,
    delayed,
    tissue_response,
)

NORMAL, PENUMBRA = 2.0, 6.0  # s: true Tmax below NORMAL is normal, above PENUMBRA lesion
HYPOPERFUSED = 2.0  # s: voxels delayed more than this get the reduced flow (and dispersion)


@dataclass(frozen=True)
class DelayCase:
    """What one benchmark run simulates; acquisition settings default to the phantom's."""

    patients: int = 64
    voxels: int = 400  # per patient
    delay: tuple[float, float] = (-3.0, 12.0)  # s, uniform per voxel
    dispersion: tuple[float, float] | None = None  # s, exponential τ per patient (hypoperfused)
    snr: float = DscSpec.snr
    spec: DscSpec = field(default_factory=DscSpec)


@dataclass
class Simulated:
    """One patient: ΔR2* curves from noisy signal, the true AIF and the true Tmax."""

    curves: np.ndarray  # (N, T) ΔR2*, 1/s, through the pipeline's signal → ΔR2* step
    aif: np.ndarray  # (T,) true arterial ΔR2*, 1/s
    truth: np.ndarray  # (N,) true Tmax, s
    tr: float


def simulate_patient(rng: np.random.Generator, case: DelayCase, noise: bool = True) -> Simulated:
    """One AIF and ``case.voxels`` tissue curves with continuous delays (see the module notes)."""
    spec = case.spec
    times = np.arange(spec.n_times) * spec.tr
    fine = np.arange(0.0, times[-1] + 4 * spec.tr, spec.fine_dt)
    aif_fine = arterial_input(fine, rng.uniform(6.0, 12.0), spec.aif_peak)
    flow_fraction = rng.uniform(*spec.flow_drop)
    tau = rng.uniform(*case.dispersion) if case.dispersion else 0.0
    kind = rng.choice([Tissue.GREY, Tissue.WHITE], case.voxels)
    delay = rng.uniform(*case.delay, case.voxels)
    scale = PerfusionConfig().scale

    delta = np.zeros((case.voxels, spec.n_times))
    truth = np.zeros(case.voxels)
    s0 = np.zeros(case.voxels)
    for tissue in (Tissue.GREY, Tissue.WHITE):
        normal = PHYSIOLOGY[tissue]
        for hypo in (False, True):
            where = (kind == tissue) & ((delay > HYPOPERFUSED) == hypo)
            perfusion = TissuePerfusion(normal.cbf * flow_fraction, normal.cbv) if hypo else normal
            curve, peak_time = tissue_response(
                aif_fine, fine, perfusion, tau if hypo else 0.0, scale
            )
            delta[where] = delayed(curve, fine, times, delay[where])
            truth[where] = delay[where] + peak_time
            s0[where] = BASELINE[tissue]
    clean = s0[:, None] * np.exp(-spec.te * delta)
    if noise:
        sigma = BASELINE[Tissue.GREY] / case.snr
        clean = np.hypot(
            clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape)
        )
    signal = clean.astype(np.float32)[None, None]  # (1, 1, N, T): the pipeline's (Z, Y, X, T)
    mask = np.ones(signal.shape[:3], bool)
    curves = delta_r2(signal, mask, bolus_arrival(signal[mask].mean(axis=0)), spec.te)
    aif = np.interp(times, fine, aif_fine).astype(np.float32)
    return Simulated(curves=curves, aif=aif, truth=truth, tr=spec.tr)


def simulate(case: DelayCase, seed: int, noise: bool = True) -> list[Simulated]:
    """``case.patients`` patients, patient ``i`` drawn from ``default_rng([seed, i])``."""
    return [
        simulate_patient(np.random.default_rng([seed, i]), case, noise)
        for i in range(case.patients)
    ]


def residues(patients: list[Simulated], method: str) -> dict[str, np.ndarray]:
    """Every voxel's Tmax (``Residue.delay``: the residue's peak, what the maps show) and the
    residue's half-rise time (``Residue.onset``), by the project's deconvolution."""
    results = [deconvolve(p.curves, p.aif, p.tr, method, onset=True, workers=1) for p in patients]
    return {name: np.concatenate([getattr(r, name) for r in results]) for name in ORDER}


ORDER = ("delay", "onset")  # the features of the learnt correction, after a constant


def learn_correction(cases: list[DelayCase], seed: int) -> np.ndarray:
    """Least-squares ``truth ≈ b0 + b1·onset + b2·delay`` over oSVD on ``cases`` drawn from
    ``seed`` (the table's seed + 1: the correction never sees the voxels it is measured on)."""
    features, truths = [], []
    for case in cases:
        patients = simulate(case, seed)
        found = residues(patients, "osvd")
        features.append(design(found))
        truths.append(np.concatenate([p.truth for p in patients]))
    return np.linalg.lstsq(np.concatenate(features), np.concatenate(truths), rcond=None)[0]


def design(found: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([np.ones_like(found["delay"]), *(found[name] for name in ORDER)])


def scores(tmax: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The table's columns for one estimate of Tmax against the truth."""
    error = tmax - truth
    normal, lesion = truth < NORMAL, truth > PENUMBRA
    penumbra = ~normal & ~lesion
    read, true = tmax > PENUMBRA, lesion
    return {
        "mae_normal": float(np.abs(error[normal]).mean()),
        "mae_penumbra": float(np.abs(error[penumbra]).mean()),
        "mae_lesion": float(np.abs(error[lesion]).mean()),
        "bias": float(error.mean()),
        "penumbra_gt6": float(read[penumbra].mean()),
        "dice_gt6": float(2 * (read & true).sum() / (read.sum() + true.sum())),
    }


HEADER = (
    "| method | MAE normal s | MAE penumbra s | MAE lesion s | bias s | penumbra > 6 s "
    "| Dice > 6 s |\n|---|---|---|---|---|---|---|"
)


def row(name: str, s: dict[str, float]) -> str:
    return (
        f"| {name} | {s['mae_normal']:.2f} | {s['mae_penumbra']:.2f} | {s['mae_lesion']:.2f} "
        f"| {s['bias']:+.2f} | {100 * s['penumbra_gt6']:.1f} % | {s['dice_gt6']:.3f} |"
    )


def table(case: DelayCase, seed: int, correction: np.ndarray | None = None) -> str:
    patients = simulate(case, seed)
    truth = np.concatenate([p.truth for p in patients])
    tr = case.spec.tr
    lines = [HEADER, row("truth on the TR grid", scores(np.round(truth / tr) * tr, truth))]
    found = {method: residues(patients, method) for method in METHODS}
    lines += [row(method, scores(found[method]["delay"], truth)) for method in METHODS]
    osvd = found["osvd"]
    lines.append(row("osvd half-rise (`onset`)", scores(osvd["onset"], truth)))
    if correction is not None:
        b = correction
        name = f"learnt {b[0]:+.2f} {b[2]:+.2f}·onset {b[1]:+.2f}·Tmax (seed {seed + 1})"
        lines.append(row(name, scores(design(osvd) @ correction, truth)))
    counts = [int((truth < NORMAL).sum()), int((truth > PENUMBRA).sum())]
    counts.insert(1, len(truth) - sum(counts))
    dispersion = (
        f"dispersion τ {case.dispersion[0]:g}–{case.dispersion[1]:g} s"
        if case.dispersion
        else "no dispersion"
    )
    title = (
        f"{dispersion}, SNR {case.snr:g}, seed {seed}: {len(truth):,} voxels "
        f"({counts[0]:,} normal, {counts[1]:,} penumbra, {counts[2]:,} lesion)"
    )
    return title + "\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=DelayCase.patients)
    parser.add_argument("--voxels", type=int, default=DelayCase.voxels, help="per patient")
    parser.add_argument("--snr", type=float, default=DelayCase.snr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dispersion",
        type=float,
        nargs=2,
        default=(1.0, 3.0),
        metavar=("MIN", "MAX"),
        help="τ range (s) of the second table's dispersion",
    )
    args = parser.parse_args()
    cases = [
        DelayCase(args.patients, args.voxels, dispersion=dispersion, snr=args.snr)
        for dispersion in (None, tuple(args.dispersion))
    ]
    correction = learn_correction(cases, args.seed + 1)
    for case in cases:
        print(table(case, args.seed, correction) + "\n")


if __name__ == "__main__":
    main()
