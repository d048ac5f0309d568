"""DSC perfusion: a 4D series in, Tmax / CBF / CBV / MTT maps and the volumes they give out.

The task's model is the trained Tmax net (``weights/perfusion``): :func:`predict` runs the same
chain as the Perfusion tab's "trained CNN" and ``python -m workbench perfusion --method cnn``
(:func:`workbench.perfusion.pipeline.cnn_maps`: brain mask, AIF, oSVD for CBF / CBV / MTT, the
net's Tmax) and answers with the summary: ``tmax_gt6_ml``, ``tmax_gt10_ml``, ``hir``, the AIF
check, ``model`` and ``weights``. The maps themselves are written by the ``perfusion``
subcommand and offered by the tab; deconvolution alone (oSVD, bSVD) needs no model and stays
there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.tasks.base import TaskSpec, register

if TYPE_CHECKING:
    from workbench.io.series import Series
    from workbench.weights import ModelBundle


def read(path: Path) -> Series:
    """A DICOM folder, a zip of one, a multi-frame DICOM or a 4D NIfTI, in time order."""
    from workbench.io.series import load_series  # nibabel, pydicom: on use

    return load_series(path)


def predict(bundle: ModelBundle, series: Series) -> dict[str, Any]:
    """The summary of the series' maps with the net's Tmax (volumes in ml)."""
    from workbench.perfusion.pipeline import cnn_maps

    return {"source": series.source, **cnn_maps(series, bundle).summary}


SPEC = register(
    TaskSpec(
        name="perfusion",
        title="Tmax from DSC perfusion",
        predict=predict,
        read=read,
        zips=True,
        phantom="workbench.phantom.perfusion:write_dsc",
        train="workbench.recipes.perfusion:main",
        tab="workbench.ui.perfusion:build",
        tab_title="Perfusion",
        endpoint="perfusion_maps",
        examples=("perfusion_phantom.zip",),  # a simulated stroke patient, 6 slices × 40 frames
    )
)
