"""DSC perfusion physics: signal → ΔR2*, automatic AIF, model fit or SVD deconvolution, maps.

``compute_maps(series)`` runs the chain on a :class:`workbench.io.series.Series`;
``run_perfusion(path, out_dir)`` (in :mod:`workbench.perfusion.pipeline`) adds reading and writing.
"""

from workbench.perfusion.deconvolution import METHODS, Residue, deconvolve
from workbench.perfusion.maps import PerfusionConfig, PerfusionMaps, compute_maps
from workbench.perfusion.templates import TemplateFit, fit_templates

__all__ = [
    "METHODS",
    "PerfusionConfig",
    "PerfusionMaps",
    "Residue",
    "TemplateFit",
    "compute_maps",
    "deconvolve",
    "fit_templates",
]
