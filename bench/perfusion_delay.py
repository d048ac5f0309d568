"""Tmax and CBF accuracy of every perfusion method on DSC curves with continuous, known delays.

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
Tmax: normal < 2 s, penumbra 2–6 s, lesion > 6 s. The true CBF is the flow itself (with
dispersion, above the peak of the dispersed residue that deconvolution recovers).

Signal and pipeline. ``S = S0·exp(−TE·ΔR2*)`` (S0: GM 600, WM 480, the phantom's baselines) with
Rician noise of sigma 600/SNR (SNR 50: the phantom's default); then the project's own code path:
:func:`workbench.perfusion.signal.bolus_arrival` and :func:`~workbench.perfusion.signal.delta_r2` to
ΔR2*, then each method's Tmax and CBF through :func:`workbench.perfusion.maps.tmax_and_flow` (what
``compute_maps`` writes): the SVD methods' residue peak and its time, and ``template``, the default,
the Bayesian fit of model curves made from the series' AIF (:mod:`workbench.perfusion.templates`;
nothing is fitted per patient, and its fixed prior was set on other seeds). The AIF is the true,
noise-free arterial ΔR2* sampled at the TR, so the AIF selection plays no part. "truth on the TR
grid" is the truth rounded to the nearest sample: the error any estimator restricted to multiples of
the TR cannot beat.

Columns: mean absolute error of Tmax (s) per class (normal, penumbra, lesion); bias, the mean
signed error (Tmax − truth) over all voxels; the share of penumbra voxels read above 6 s; the
Dice of Tmax > 6 s against true Tmax > 6 s; the mean absolute relative error of CBF over all
voxels.

Two more rows are the earlier attempts at removing oSVD's bias. ``onset`` is the oSVD residue's
half-rise time (:attr:`workbench.perfusion.Residue.onset`, ``deconvolve(..., onset=True)``): where
CBF·R(t) last rises through half its peak before the peak, linear between samples. Truncation
blurs the residue's sharp start and moves its peak late; the half-rise stays near the start. It is
the delay's estimate, so it reads dispersed voxels early (their true peak comes later). The last
row is a linear correction ``b0 + b1·onset + b2·Tmax`` fitted by least squares on oSVD over both
tables' cases drawn from seed + 1 (a different set of patients and voxels, never the reported
ones), then applied to the reported seed; its coefficients hold for this TR, AIF shape and OI
threshold only, which is why it never went into the maps.

OSIPI table. CBF on OSIPI's 14 reference curves (``../shared/data/perfusion/osipi_dsc_data.csv``,
no haematocrit factors). OSIPI made them by the sampled sum ``TR · Σ AIF[i − j] · R(j·TR)``, the
SVD methods' own model; the same samples made by continuous-time convolution carry more flow,
by the left Riemann sum of exp(−t/MTT) over its integral, ``TR / (MTT·(1 − e^(−TR/MTT)))`` (2–19 %
for their MTTs of 24 to 3.4 s; their own CBV, the area ratio, reads high by the same factor), and
start half a TR earlier. The table gives the error against both; the last row reads the template
fit's CBF back into the sampled convention with that factor at its own MTT.

Last run (``python bench/perfusion_delay.py``: seed 0, 64 patients × 400 voxels, SNR 50; a model
training shared the two cores for part of it, which changes no number here)::

    no dispersion, SNR 50, seed 0: 25,600 voxels (8,454 normal, 6,921 penumbra, 10,225 lesion)

    | method | normal s | penumbra s | lesion s | bias s | penumbra > 6 s | Dice > 6 s | CBF error |
    |---|---|---|---|---|---|---|---|
    | truth on the TR grid | 0.37 | 0.39 | 0.37 | +0.00 | 0.0 % | 0.933 | — |
    | ssvd | 2.17 | 4.12 | 4.16 | +3.43 | 59.0 % | 0.827 | 22.1 % |
    | bsvd | 2.80 | 5.77 | 5.53 | +4.55 | 60.5 % | 0.816 | 25.4 % |
    | osvd | 2.98 | 4.15 | 4.13 | +3.76 | 74.9 % | 0.797 | 30.9 % |
    | template | 0.57 | 1.20 | 1.30 | +0.71 | 27.1 % | 0.909 | 17.8 % |
    | osvd half-rise (`onset`) | 0.99 | 0.93 | 0.93 | -0.70 | 4.3 % | 0.917 | — |
    | fit -0.14 +0.68·onset +0.34·Tmax (seed 1) | 0.48 | 1.17 | 1.26 | +0.79 | 27.2 % | 0.909 | — |

    dispersion τ 1–3 s, SNR 50, seed 0: 25,600 voxels (8,455 normal, 663 penumbra, 16,482 lesion)

    | method | normal s | penumbra s | lesion s | bias s | penumbra > 6 s | Dice > 6 s | CBF error |
    |---|---|---|---|---|---|---|---|
    | truth on the TR grid | 0.37 | 0.38 | 0.38 | -0.01 | 0.0 % | 0.972 | — |
    | ssvd | 2.18 | 2.11 | 2.71 | +2.19 | 50.5 % | 0.968 | 25.3 % |
    | bsvd | 2.79 | 3.92 | 4.64 | +3.44 | 52.6 % | 0.958 | 26.9 % |
    | osvd | 2.98 | 2.31 | 2.21 | +2.41 | 77.5 % | 0.981 | 34.3 % |
    | template | 0.56 | 1.44 | 1.29 | -0.57 | 13.7 % | 0.944 | 17.7 % |
    | osvd half-rise (`onset`) | 0.99 | 2.57 | 3.07 | -2.32 | 1.8 % | 0.834 | — |
    | fit -0.14 +0.68·onset +0.34·Tmax (seed 1) | 0.49 | 1.24 | 1.48 | -0.72 | 9.2 % | 0.936 | — |

    OSIPI DSC reference curves (14, TR 1.243 s, SNR 200, no delay)

    | method | CBF error vs stated | CBF error vs continuous-time | mean Tmax s |
    |---|---|---|---|
    | ssvd | 10.5 % | 18.5 % | +0.71 |
    | bsvd | 18.2 % | 25.4 % | +1.60 |
    | osvd | 14.0 % | 21.6 % | +1.86 |
    | template | 11.0 % | 4.1 % | -0.50 |
    | template, read in the sampled convention | 3.7 % | 9.5 % | |

All three SVD methods read Tmax late everywhere, by 2–4.5 s on average, with the true AIF:
truncation low-passes the residue's sharp onset and moves its peak later, and noise adds to it (oSVD
keeps fewer components in noisier, lower-flow voxels). None meets the targets (MAE ≤ 1.0 s normal
and ≤ 1.5 s lesion, Dice of Tmax > 6 s ≥ 0.90, in both tables). **The template fit meets all of them
in both tables** (0.57 / 1.30 s, Dice 0.909 without dispersion; 0.56 / 1.29 s, Dice 0.944 with). Its
model curves come from each patient's own AIF at its own TR; only its prior's settings (grid, and
the share of delayed tissue taken as dispersed) were chosen by looking at this simulator, on seeds 1
and 2, never the reported seed 0. The Dice without dispersion is the narrowest margin: at SNR 50 a
late sharp residue and an earlier dispersed one fit a curve about equally well, and the prior (half
of the delayed tissue dispersed) reads undispersed delayed tissue 0.7 s late (27 % of that penumbra
above 6 s) and dispersed lesions 0.6 s early. Its CBF error, 18 % per voxel at SNR 50, is below
every SVD method's (22–34 %, all reading low). On OSIPI's curves its CBF is 11.0 % from the stated
values, **above the 8 % target** (sSVD 10.5 %, oSVD 14.0 %): the curves follow the sampled
convention, and against the flow that makes them in continuous time the fit is within 4.1 % (the SVD
methods 18–25 %); read in the sampled convention it is within 3.7 % of the stated values, but then
the phantom's continuous-time CBF would read 4–14 % low (most at short MTT), so the maps keep the
continuous-time reading.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.perfusion import METHODS, PerfusionConfig, deconvolve
from workbench.perfusion.maps import TEMPLATE, blood_flow, blood_volume, tmax_and_flow
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

OSIPI = Path(__file__).resolve().parents[2] / "shared" / "data" / "perfusion" / "osipi_dsc_data.csv"
NO_HAEMATOCRIT = {"hematocrit_large": 0.0, "hematocrit_small": 0.0, "tissue_density": 1.0}
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
    cbf: np.ndarray  # (N,) true CBF, ml/100 g/min (the flow, not the dispersed residue's peak)
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
    cbf = np.zeros(case.voxels)
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
            cbf[where] = perfusion.cbf
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
    return Simulated(curves=curves, aif=aif, truth=truth, cbf=cbf, tr=spec.tr)


def simulate(case: DelayCase, seed: int, noise: bool = True) -> list[Simulated]:
    """``case.patients`` patients, patient ``i`` drawn from ``default_rng([seed, i])``."""
    return [
        simulate_patient(np.random.default_rng([seed, i]), case, noise)
        for i in range(case.patients)
    ]


def maps_values(patients: list[Simulated], method: str) -> dict[str, np.ndarray]:
    """Every voxel's Tmax (s) and CBF (ml/100 g/min) by ``method``, through the maps' own step
    (:func:`workbench.perfusion.maps.tmax_and_flow`)."""
    config = PerfusionConfig(method=method, workers=1)
    found = [tmax_and_flow(p.curves, p.aif, p.tr, config) for p in patients]
    return {
        "tmax": np.concatenate([tmax for tmax, _ in found]),
        "cbf": blood_flow(np.concatenate([flow for _, flow in found]), config.scale),
    }


def residues(patients: list[Simulated], method: str) -> dict[str, np.ndarray]:
    """Every voxel's residue peak time (``Residue.delay``, the SVD method's Tmax) and half-rise
    time (``Residue.onset``), by the project's deconvolution."""
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
    """The table's Tmax columns for one estimate of Tmax against the truth."""
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


def relative_error(cbf: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute relative error of CBF, %."""
    return float(100 * np.mean(np.abs(cbf / truth - 1)))


HEADER = (
    "| method | normal s | penumbra s | lesion s | bias s | penumbra > 6 s | Dice > 6 s "
    "| CBF error |\n|---|---|---|---|---|---|---|---|"
)


def row(name: str, s: dict[str, float], cbf_error: float | None = None) -> str:
    cbf = "—" if cbf_error is None else f"{cbf_error:.1f} %"
    return (
        f"| {name} | {s['mae_normal']:.2f} | {s['mae_penumbra']:.2f} | {s['mae_lesion']:.2f} "
        f"| {s['bias']:+.2f} | {100 * s['penumbra_gt6']:.1f} % | {s['dice_gt6']:.3f} | {cbf} |"
    )


def table(case: DelayCase, seed: int, correction: np.ndarray | None = None) -> str:
    patients = simulate(case, seed)
    truth = np.concatenate([p.truth for p in patients])
    cbf = np.concatenate([p.cbf for p in patients])
    tr = case.spec.tr
    lines = [HEADER, row("truth on the TR grid", scores(np.round(truth / tr) * tr, truth))]
    for method in (*METHODS, TEMPLATE):
        found = maps_values(patients, method)
        lines.append(row(method, scores(found["tmax"], truth), relative_error(found["cbf"], cbf)))
    osvd = residues(patients, "osvd")
    lines.append(row("osvd half-rise (`onset`)", scores(osvd["onset"], truth)))
    if correction is not None:
        b = correction
        name = f"fit {b[0]:+.2f} {b[2]:+.2f}·onset {b[1]:+.2f}·Tmax (seed {seed + 1})"
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


def osipi_table(path: Path = OSIPI) -> str:
    """CBF on OSIPI's reference curves: error against their stated CBF and against the CBF that
    makes the same curves in continuous time (see the module notes)."""
    rows = list(csv.DictReader(path.open()))
    tissue = np.array([np.array(r["C_tis"].split(), float) for r in rows])
    aif = np.array(rows[0]["C_aif"].split(), float)
    tr = float(rows[0]["tr"])
    stated = np.array([float(r["cbf"]) for r in rows])
    mtt = 60 * np.array([float(r["cbv"]) for r in rows]) / stated
    continuous = stated * sampled_to_continuous(mtt, tr)
    lines = [
        f"OSIPI DSC reference curves ({len(rows)}, TR {tr:g} s, SNR 200, no delay)\n",
        "| method | CBF error vs stated | CBF error vs continuous-time | mean Tmax s |",
        "|---|---|---|---|",
    ]
    for method in (*METHODS, TEMPLATE):
        config = PerfusionConfig(method=method, workers=1, **NO_HAEMATOCRIT)
        tmax, flow = tmax_and_flow(tissue, aif, tr, config)
        cbf = blood_flow(flow, config.scale)
        lines.append(
            f"| {method} | {relative_error(cbf, stated):.1f} % "
            f"| {relative_error(cbf, continuous):.1f} % | {tmax.mean():+.2f} |"
        )
        if method == TEMPLATE:  # the same fit, its CBF read back into the sampled convention
            own_mtt = 60 * blood_volume(tissue, aif, config.scale) / cbf
            sampled = cbf / sampled_to_continuous(own_mtt, tr)
            lines.append(
                f"| {method}, read in the sampled convention | "
                f"{relative_error(sampled, stated):.1f} % "
                f"| {relative_error(sampled, continuous):.1f} % | |"
            )
    return "\n".join(lines)


def sampled_to_continuous(mtt: np.ndarray, tr: float) -> np.ndarray:
    """CBF factor between a curve made by the sampled sum ``TR · Σ AIF[i − j] · R(j·TR)`` and the
    continuous-time convolution: the left Riemann sum of exp(−t/MTT) over its integral."""
    return tr / (mtt * (1 - np.exp(-tr / mtt)))


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
    print(osipi_table() if OSIPI.is_file() else f"OSIPI: skipped ({OSIPI} not found)")


if __name__ == "__main__":
    main()
