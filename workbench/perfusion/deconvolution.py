"""Deconvolution of tissue curves by the arterial input function (AIF): sSVD, bSVD, oSVD.

Indicator dilution: ``C(t) = CBF · (AIF ⊗ R)(t)``; discretised, ``c = A · (CBF·r)`` with
``A[i, j] = dt · aif[i − j]``. Truncated SVD inverts ``A`` keeping the singular components above
a fraction of the largest (Østergaard 1996, sSVD). Padding to twice the length and making ``A``
block-circulant (Wu 2003, bSVD/cSVD) makes the result insensitive to the tracer arriving before
or after the AIF: a negative delay wraps to the end of the residue. oSVD (Wu 2003) chooses the
truncation per voxel: the most components whose residue keeps the oscillation index
``OI = Σ|r[k] − 2r[k−1] + r[k−2]| / (L · max r)`` at or below a threshold (0.035).

Vectorised: ``A`` is decomposed once; with ``w = Uᵀc / s`` the residue keeping ``k`` components is
the cumulative sum ``Σ_{i<k} V[:, i] w_i`` of rank-one terms, so walking the truncation levels in
order adds one block of terms per level (a small BLAS product) to the residue and to its second
difference, for every voxel at once. No voxel loop and no full product per level.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.linalg import circulant, toeplitz
from threadpoolctl import threadpool_limits

CHUNK = 1024  # voxels per block: keeps a level's (L, CHUNK) float32 arrays in cache
PATIENCE = 8  # oSVD: levels in a row above the OI threshold before a voxel stops


@dataclass(frozen=True)
class SVDMethod:
    """One deconvolution variant: matrix shape and how the truncation is chosen."""

    circulant: bool  # block-circulant (delay-insensitive) or lower-triangular Toeplitz
    threshold: float  # fixed truncation (fraction of the largest singular value)
    adaptive: bool = False  # oSVD: per-voxel truncation by the oscillation index


TIME_DECIMALS = 3  # Tmax is a multiple of the TR rounded to 1 ms, and is rounded to 1 ms

METHODS: dict[str, SVDMethod] = {
    "ssvd": SVDMethod(circulant=False, threshold=0.2),  # Østergaard 1996
    "bsvd": SVDMethod(circulant=True, threshold=0.1),  # Wu 2003, cSVD
    "osvd": SVDMethod(circulant=True, threshold=0.1, adaptive=True),  # Wu 2003, oSVD
}


@dataclass(frozen=True)
class Residue:
    """Per-voxel results of the deconvolution."""

    peak: np.ndarray  # (N,) max of CBF·R(t), 1/s
    delay: np.ndarray  # (N,) Tmax: time of that maximum, s; negative when wrapped (circulant)
    components: np.ndarray  # (N,) singular components kept
    # (N,) s, when asked for (``onset=True``): where CBF·R(t) last rises through half its peak
    # before the peak, linear between samples (sub-TR); the peak's own time when it never dips
    # below half before it. Truncation blurs the residue's sharp onset and pushes its peak late;
    # the half-rise stays near the onset (bench/perfusion_delay.py measures it).
    onset: np.ndarray | None = None


def aif_matrix(aif: np.ndarray, dt: float, circulant_: bool) -> np.ndarray:
    """The convolution matrix: lower-triangular Toeplitz, or block-circulant on 2T samples."""
    aif = np.asarray(aif, dtype=np.float64)
    if circulant_:
        return dt * circulant(np.concatenate([aif, np.zeros_like(aif)]))
    return dt * toeplitz(aif, np.zeros_like(aif))


def deconvolve(
    curves: np.ndarray,
    aif: np.ndarray,
    dt: float,
    method: str = "osvd",
    *,
    threshold: float | None = None,
    oi_threshold: float = 0.035,
    min_threshold: float = 0.005,
    patience: int = PATIENCE,
    onset: bool = False,
    workers: int = 2,
    progress: Callable[[float], None] | None = None,
) -> Residue:
    """Deconvolve ``curves`` (N, T) by ``aif`` (T,) sampled every ``dt`` seconds.

    ``threshold`` overrides the method's fixed truncation. oSVD walks the truncation levels from
    the largest singular value down to ``min_threshold`` of it, and keeps for each voxel the
    last level with OI ≤ ``oi_threshold``; a voxel stops after ``patience`` levels in a row
    above it (smaller singular components only add oscillation). ``onset`` adds each residue's
    half-rise time (:attr:`Residue.onset`).
    """
    spec = METHODS[method]
    matrix = aif_matrix(aif, dt, spec.circulant)
    u, s, vt = np.linalg.svd(matrix)
    length = matrix.shape[0]
    levels = truncation_levels(s, spec, threshold, min_threshold)
    k_max = int(levels[-1])
    projector = (u[:, :k_max] / s[:k_max]).T.astype(np.float32)  # w = Uᵀc / s
    basis = vt[:k_max].T.astype(np.float32)  # (L, K): residue = basis @ w
    # each basis vector and its second difference: one product per level updates both
    stacked = np.concatenate([basis, np.diff(basis, 2, axis=0)])

    curves = np.asarray(curves, dtype=np.float32)
    n, n_t = curves.shape
    starts = list(range(0, n, CHUNK))
    peak = np.empty(n, np.float32)
    index = np.empty(n, np.int64)
    rise = np.empty(n, np.float32) if onset else None
    kept = np.empty(n, np.int32)
    done = [0]

    def run(start: int) -> None:
        block = curves[start : start + CHUNK].T  # (T, n): zero padding to L is implicit
        weights = projector[:, :n_t] @ block
        k = (
            _osvd_levels(weights, stacked, levels, oi_threshold, patience)
            if spec.adaptive
            else None
        )
        if k is None:
            k = np.full(block.shape[1], k_max, np.int32)
            residue = basis @ weights
        else:
            keep = np.arange(k_max)[:, None] < k[None, :]
            residue = basis @ np.where(keep, weights, 0.0)
        peak[start : start + CHUNK] = residue.max(axis=0)
        index[start : start + CHUNK] = residue.argmax(axis=0)
        if rise is not None:
            rise[start : start + CHUNK] = _onset(residue, index[start : start + CHUNK], dt, spec)
        kept[start : start + CHUNK] = k
        done[0] += 1
        if progress is not None:
            progress(done[0] / len(starts))

    with threadpool_limits(1), ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(run, starts))
    return Residue(peak=peak, delay=_delay(index, length, dt, spec), components=kept, onset=rise)


def truncation_levels(
    s: np.ndarray, spec: SVDMethod, threshold: float | None, min_threshold: float
) -> np.ndarray:
    """Component counts to try: one fixed level, or (oSVD) every distinct singular value.

    The circulant's singular values come in equal pairs, which are kept or dropped together.
    """
    if s[0] <= 0:
        raise ValueError("the arterial input function is zero")
    relative = s / s[0]
    if not spec.adaptive:
        return np.array([int((relative >= (threshold or spec.threshold)).sum())])
    counts = np.flatnonzero(np.diff(np.append(relative, -1.0)) < -1e-9 * relative) + 1
    return counts[relative[counts - 1] >= min_threshold]


def _delay(index: np.ndarray, length: int, dt: float, spec: SVDMethod) -> np.ndarray:
    """Residue peak index → Tmax in seconds; circulant indices past half wrap to negative.

    On a 1 ms grid: a TR fitted from DICOM clock times (1.5000000000000007 s) would put
    4 · TR a hair above 6 s, and the float error, not the data, would decide the threshold.
    """
    wrapped = np.where(spec.circulant & (index > length // 2), index - length, index)
    return np.round(wrapped * round(dt, TIME_DECIMALS), TIME_DECIMALS).astype(np.float32)


def _onset(residue: np.ndarray, index: np.ndarray, dt: float, spec: SVDMethod) -> np.ndarray:
    """Half-rise time (s) of each column of ``residue`` (L, n) whose maximum is at ``index``.

    Circulant residues are read on lags −(L/2 − 1)..L/2, the range :func:`_delay` maps their
    indices to, so a rise that starts before the AIF is found across the wrap.
    """
    length, n = residue.shape
    first = -(length // 2 - 1) if spec.circulant else 0  # lag of row 0 once rolled
    ordered = np.roll(residue, -first, axis=0)
    lag = np.where(spec.circulant & (index > length // 2), index - length, index)
    top = lag - first  # the peak's row in ``ordered``
    half = ordered[top, np.arange(n)] / 2
    below = (ordered < half) & (np.arange(length)[:, None] < top)
    last = length - 1 - np.argmax(below[::-1], axis=0)  # last row below half before the peak
    last = np.where(below.any(axis=0), last, top)
    low = ordered[last, np.arange(n)]
    high = ordered[np.minimum(last + 1, length - 1), np.arange(n)]
    share = np.clip((half - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
    share = np.where(last == top, 0.0, share)
    return ((last + share + first) * dt).astype(np.float32)


def deconvolve_loop(
    curves: np.ndarray,
    aif: np.ndarray,
    dt: float,
    method: str = "osvd",
    *,
    threshold: float | None = None,
    oi_threshold: float = 0.035,
    min_threshold: float = 0.005,
    patience: int = PATIENCE,
    onset: bool = False,
) -> Residue:
    """The textbook way, one voxel and one truncated pseudo-inverse at a time.

    Same results as :func:`deconvolve` (up to float32 rounding); kept as the reference the
    tests check the vectorised path against and the benchmark's baseline.
    """
    spec = METHODS[method]
    matrix = aif_matrix(aif, dt, spec.circulant)
    u, s, vt = np.linalg.svd(matrix)
    length = matrix.shape[0]
    levels = truncation_levels(s, spec, threshold, min_threshold)
    peak, index, kept, rise = [], [], [], []
    for curve in np.asarray(curves, dtype=np.float64):
        padded = np.zeros(length)
        padded[: len(curve)] = curve
        best, misses = None, 0
        for count in levels:
            residue = vt[:count].T @ ((u[:, :count].T @ padded) / s[:count])
            top = residue.max()
            oi = np.abs(np.diff(residue, 2)).sum() / (length * top) if top > 0 else np.inf
            if best is None or (spec.adaptive and oi <= oi_threshold):
                best = (residue, count)
            misses = 0 if oi <= oi_threshold else misses + 1
            if misses >= patience:
                break
        peak.append(best[0].max())
        index.append(best[0].argmax())
        kept.append(best[1])
        if onset:
            rise.append(_onset(best[0][:, None], np.array(index[-1:]), dt, spec)[0])
    return Residue(
        peak=np.array(peak, np.float32),
        delay=_delay(np.array(index), length, dt, spec),
        components=np.array(kept, np.int32),
        onset=np.array(rise, np.float32) if onset else None,
    )


def _osvd_levels(
    weights: np.ndarray,
    stacked: np.ndarray,
    levels: np.ndarray,
    oi_threshold: float,
    patience: int,
) -> np.ndarray:
    """Per voxel, the component count of the last level whose residue has OI ≤ the threshold
    (the first level when none has)."""
    length = (stacked.shape[0] + 2) // 2
    n = weights.shape[1]
    running = np.zeros((stacked.shape[0], n), np.float32)  # residue, then its 2nd difference
    scratch = np.empty((length - 2, n), np.float32)
    chosen = np.full(n, levels[0], np.int32)
    misses = np.zeros(n, np.int32)  # levels in a row above the threshold
    previous = 0
    for count in levels:
        running += stacked[:, previous:count] @ weights[previous:count]  # rank-one terms
        previous = count
        top = running[:length].max(axis=0)
        roughness = np.abs(running[length:], out=scratch).sum(axis=0)
        calm = (roughness <= oi_threshold * length * top) & (top > 0) & (misses < patience)
        chosen[calm] = count
        misses = np.where(calm, 0, misses + 1)
        if misses.min() >= patience:
            break
    return chosen
