"""Deconvolution speed on a 128×128×24×60 simulated DSC series: vectorised vs a per-voxel loop.

    python bench/perfusion.py [--workers 2] [--loop-voxels 400] [--weights perfusion]

The per-voxel loop (``deconvolve_loop``: one voxel and one truncated pseudo-inverse at a time) is
timed on a random subsample of the brain voxels and extrapolated to all of them; the table says so.

Last run (the 2-core development machine, nothing else running)::

    series 128x128x24x60, 146,231 voxels in the brain mask, 2 worker(s)

    method  vectorised s  (CPU s)  per-voxel loop s  speed-up
    ssvd           0.049    0.094               1.9       39x
    bsvd           0.083    0.161               2.5       30x
    osvd           0.529    0.972              33.2       63x

    per-voxel loop timed on 400 random voxels and scaled to 146,231
    whole oSVD pipeline (mask, ΔR2*, AIF, deconvolution, maps): 1.37 s (1.95 CPU s)
    CNN Tmax (perfusion_conv2: inputs and forward pass, after the maps): 0.35 s (0.42 CPU s)

oSVD deconvolution of the whole series takes 0.53 s of wall clock: the 1 s goal is met.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from workbench.errors import WeightsNotFoundError
from workbench.perfusion import PerfusionConfig, compute_maps
from workbench.perfusion.aif import select_aif
from workbench.perfusion.deconvolution import METHODS, deconvolve, deconvolve_loop
from workbench.perfusion.signal import bolus_arrival, brain_mask, clean, delta_r2
from workbench.phantom.perfusion import DscSpec, simulate_dsc


def _seconds(function, repeats: int = 3) -> tuple[float, float]:
    """Best wall-clock and CPU seconds over ``repeats`` runs (CPU: all threads together)."""
    wall, cpu = np.inf, np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loop-voxels", type=int, default=400)
    parser.add_argument("--weights", default="perfusion", help="CNN model folder for its row")
    args = parser.parse_args()

    spec = DscSpec(shape=(24, 128, 128), n_times=60)
    patient = simulate_dsc(np.random.default_rng(0), spec)
    series = patient.series()
    data = clean(series.data)
    mask = brain_mask(data)
    curves = delta_r2(data, mask, bolus_arrival(data[mask].mean(axis=0)), series.te)
    aif = curves[select_aif(curves)].mean(axis=0)
    sample = np.random.default_rng(0).choice(len(curves), args.loop_voxels, replace=False)
    n = len(curves)
    print(
        f"series {spec.shape[1]}x{spec.shape[2]}x{spec.shape[0]}x{spec.n_times}, "
        f"{n:,} voxels in the brain mask, {args.workers} worker(s)\n"
    )
    header = ("method", "vectorised s", "(CPU s)", "per-voxel loop s", "speed-up")
    print("{:<6} {:>13} {:>8} {:>17} {:>9}".format(*header))
    for method in METHODS:
        fast, cpu = _seconds(
            lambda m=method: deconvolve(curves, aif, series.tr, m, workers=args.workers)
        )
        loop = _seconds(lambda m=method: deconvolve_loop(curves[sample], aif, series.tr, m), 1)[0]
        loop *= n / len(sample)
        print(f"{method:<6} {fast:>13.3f} {cpu:>8.3f} {loop:>17.1f} {loop / fast:>8.0f}x")
    print(f"\nper-voxel loop timed on {len(sample)} random voxels and scaled to {n:,}")
    config = PerfusionConfig(workers=args.workers)
    total, cpu = _seconds(lambda: compute_maps(series, config), 1)
    print(
        f"whole oSVD pipeline (mask, ΔR2*, AIF, deconvolution, maps): {total:.2f} s "
        f"({cpu:.2f} CPU s)"
    )
    _bench_cnn(series, config, args.weights)


def _bench_cnn(series, config: PerfusionConfig, weights: str) -> None:
    """The trained net's Tmax on top of the maps: its inputs (ΔR2* resampled) and one pass."""
    from workbench.perfusion.pipeline import learned_tmax
    from workbench.weights import load

    try:
        bundle = load(weights)
    except WeightsNotFoundError as err:
        print(f"CNN Tmax: skipped ({err})")
        return
    maps = compute_maps(series, config)
    seconds, cpu = _seconds(lambda: learned_tmax(maps, series, bundle, config))
    name = bundle.config.model.name
    print(
        f"CNN Tmax ({name}: inputs and forward pass, after the maps): {seconds:.2f} s "
        f"({cpu:.2f} CPU s)"
    )


if __name__ == "__main__":
    main()
