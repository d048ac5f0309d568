"""DSC perfusion physics: signal → ΔR2*, automatic AIF, SVD deconvolution, Tmax/CBF/CBV/MTT.

``compute_maps(series)`` runs the chain on a :class:`workbench.io.series.Series`;
``run_perfusion(path, out_dir)`` (in :mod:`workbench.perfusion.pipeline`) adds reading and writing.
"""

from workbench.perfusion.deconvolution import METHODS, Residue, deconvolve
from workbench.perfusion.maps import PerfusionConfig, PerfusionMaps, compute_maps

__all__ = ["METHODS", "PerfusionConfig", "PerfusionMaps", "Residue", "compute_maps", "deconvolve"]
