"""Speed of every perfusion method on a 128×128×24×60 simulated DSC series, 1 and 2 threads.

    python bench/perfusion.py [--loop-voxels 400] [--weights perfusion]

Each method reads Tmax and CBF of every brain-mask voxel through the maps' own step
(:func:`workbench.perfusion.maps.tmax_and_flow`): the SVD methods' vectorised deconvolution and
``template``, the default, the Bayesian fit of model curves (:mod:`workbench.perfusion.templates`),
with BLAS held to 1 or 2 threads (threadpoolctl) and as many worker threads. The SVD methods are
also timed as a per-voxel loop (``deconvolve_loop``: one voxel and one truncated pseudo-inverse at
a time) on a random subsample, extrapolated to all voxels; the speed-up is against 2 threads. The
whole pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps) only reads the voxels that hold tracer (CBV
above a quarter of the median: about 70 % of the mask here). osipy (OSIPI's library) runs on the
same curves when it is installed.

Last run (the 2-core development machine, idle)::

    series 128x128x24x60, 185,436 voxels in the brain mask; wall (CPU) seconds with 1 and 2 threads

    method    1 thread s  (CPU s)  2 threads s  (CPU s)   loop s  speed-up
    ssvd           0.071    0.074       0.076    0.146      3.3       43x
    bsvd           0.141    0.147       0.118    0.233      4.7       40x
    osvd           0.979    0.992       0.768    1.338     35.1       46x
    template       1.584    1.597       0.901    1.746        —         —

    per-voxel loop timed on 400 random voxels and scaled to 185,436
    whole template pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps), 1 thread(s): 1.37 s (1.38 CPU s)
    whole template pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps), 2 thread(s): 0.93 s (1.33 CPU s)
    whole osvd pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps), 1 thread(s): 0.98 s (0.99 CPU s)
    whole osvd pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps), 2 thread(s): 0.84 s (1.11 CPU s)
    osipy: skipped (needs Python ≥ 3.12)
    CNN Tmax (perfusion_conv2: inputs and forward pass, after the maps): 0.43 s (0.52 CPU s)

The template fit reads every mask voxel in 0.90 s with 2 threads (1.6 s with 1): 1.6× oSVD's
CPU time, 1.2× its wall clock, since its elementwise work splits better over the threads. The
whole default pipeline, which skips the voxels without tracer, takes 0.93 s against oSVD's
0.84 s. The 1 s goal for the series is met by both.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
from threadpoolctl import threadpool_limits

from workbench.errors import WeightsNotFoundError
from workbench.perfusion import PerfusionConfig, compute_maps
from workbench.perfusion.aif import select_aif
from workbench.perfusion.deconvolution import METHODS, deconvolve_loop
from workbench.perfusion.maps import TEMPLATE, tmax_and_flow
from workbench.perfusion.signal import bolus_arrival, brain_mask, clean, delta_r2
from workbench.phantom.perfusion import DscSpec, simulate_dsc

THREADS = (1, 2)


def _seconds(function, repeats: int = 3) -> tuple[float, float]:
    """Best wall-clock and CPU seconds over ``repeats`` runs (CPU: all threads together)."""
    wall, cpu = np.inf, np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def _threaded(function, threads: int, repeats: int = 3) -> tuple[float, float]:
    """:func:`_seconds` of ``function(threads)`` with BLAS held to ``threads`` threads."""
    with threadpool_limits(threads):
        return _seconds(lambda: function(threads), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        f"{n:,} voxels in the brain mask; wall (CPU) seconds with 1 and 2 threads\n"
    )
    header = ("method", "1 thread s", "(CPU s)", "2 threads s", "(CPU s)", "loop s", "speed-up")
    print("{:<8} {:>11} {:>8} {:>12} {:>8} {:>8} {:>9}".format(*header))
    for method in (*METHODS, TEMPLATE):
        timings = [
            _threaded(
                lambda k, m=method: tmax_and_flow(
                    curves, aif, series.tr, PerfusionConfig(method=m, workers=k)
                ),
                threads,
            )
            for threads in THREADS
        ]
        cells = " ".join(f"{wall:>11.3f} {cpu:>8.3f}" for wall, cpu in timings)
        if method == TEMPLATE:  # no per-voxel reference implementation
            print(f"{method:<8} {cells} {'—':>8} {'—':>9}")
            continue
        loop = _threaded(lambda k, m=method: deconvolve_loop(curves[sample], aif, series.tr, m), 1)
        loop = loop[0] * n / len(sample)
        print(f"{method:<8} {cells} {loop:>8.1f} {loop / timings[-1][0]:>8.0f}x")
    print(f"\nper-voxel loop timed on {len(sample)} random voxels and scaled to {n:,}")
    for method in (TEMPLATE, "osvd"):
        for threads in THREADS:
            config = PerfusionConfig(method=method, workers=threads)
            total, cpu = _threaded(lambda k, c=config: compute_maps(series, c), threads, 1)
            print(
                f"whole {method} pipeline (mask, ΔR2*, AIF, Tmax and CBF, maps), {threads} "
                f"thread(s): {total:.2f} s ({cpu:.2f} CPU s)"
            )
    _bench_osipy(curves, aif, series.tr)
    _bench_cnn(series, PerfusionConfig(method="osvd"), args.weights)  # as cnn_maps


def _bench_osipy(curves: np.ndarray, aif: np.ndarray, tr: float) -> None:
    """OSIPI's own library's oSVD on the same curves, against ours (2 threads)."""
    if importlib.util.find_spec("osipy") is None:
        print("osipy: skipped (needs Python ≥ 3.12)")
        return
    from osipy.dsc.deconvolution.svd import deconvolve_oSVD

    times = np.arange(curves.shape[1]) * tr
    theirs = _seconds(lambda: deconvolve_oSVD(curves, aif, times), 1)[0]
    ours = _threaded(
        lambda k: tmax_and_flow(curves, aif, tr, PerfusionConfig(method="osvd", workers=k)), 2
    )[0]
    print(f"osipy oSVD: {theirs:.2f} s, {theirs / ours:.1f}x our oSVD's {ours:.2f} s")


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
