"""Synthetic DSC-MRI stroke patients from indicator-dilution theory, written as DICOM series.

Per patient: a procedural head (:func:`workbench.phantom.head.make_head`); a gamma-variate
arterial input function with recirculation; grey matter, white matter and scalp with literature
CBF / CBV (GM 55 ml/100 g/min and 4.5 ml/100 g, WM 22 and 2.2: Leenders 1990, Østergaard 1996);
a middle-cerebral-artery-like wedge on one side whose tissue receives the bolus late (delay) and
spread out (exponential dispersion) with reduced flow; the arteries at the skull base carry the
arterial curve (partial volume 0.4–1, so the largest peaks hit the noise floor as real ones do),
the sinuses and cortical veins a later, dispersed outflow of larger area; the bright eyes lie
below the frontal lobes; then ``S = S0·exp(−TE·ΔR2*)`` and Rician noise. Tissue ΔR2*(t) =
CBF/k · (AIF ⊗ h)(t) with ``h`` = delay ⊗ dispersion ⊗ exp(−t/MTT), computed on a fine time
grid and sampled at the TR (``k``: the haematocrit/density factor of
:class:`workbench.perfusion.PerfusionConfig`, so the pipeline's CBF reads the simulated one). The
ground-truth Tmax is the time of the maximum of ``h``.

Noise: SNR 50 (grey-matter baseline over the Rician sigma) by default. Truncated SVD reads Tmax
about two TRs late, more so in noisy, low-flow voxels; at SNR 50 the oSVD Tmax > 6 s region
matches the truth with Dice ≈ 0.97, at SNR 30 only ≈ 0.8–0.85 (normal white matter then crosses
6 s). That bias is what a CNN trained with ``--target truth`` is meant to remove.

Layout (one folder per patient, as the loader expects real data)::

    patient_000/dsc/IMG00317.dcm ...   the 4D series, one file per slice and time point, shuffled
    patient_000/tmax/IMG00004.dcm ...  the reference ("vendor") Tmax map, one file per slice
    patient_000/truth_tmax.nii.gz      ground-truth Tmax (s); 0 outside brain parenchyma
    patient_000/tissue_mask.nii.gz     grey and white matter, where the truth is defined
    patient_000/params.json            the drawn parameters (delay, dispersion, side, SNR, ...)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from scipy import ndimage
from scipy.signal import fftconvolve

from workbench.io.series import Series, dicom_affine
from workbench.perfusion.maps import PerfusionConfig, compute_maps
from workbench.phantom.head import Tissue, make_head, smooth_field


@dataclass(frozen=True)
class TissuePerfusion:
    cbf: float  # ml/100 g/min
    cbv: float  # ml/100 g

    @property
    def mtt(self) -> float:
        return 60.0 * self.cbv / self.cbf


PHYSIOLOGY: dict[Tissue, TissuePerfusion] = {
    Tissue.GREY: TissuePerfusion(cbf=55.0, cbv=4.5),
    Tissue.WHITE: TissuePerfusion(cbf=22.0, cbv=2.2),
    Tissue.SCALP_FAT: TissuePerfusion(cbf=8.0, cbv=1.0),
}
# Baseline T2*-weighted EPI signal per tissue (arbitrary units; CSF bright, bone dark).
BASELINE = {
    Tissue.BACKGROUND: 0.0,
    Tissue.SCALP_FAT: 350.0,
    Tissue.SKULL: 40.0,
    Tissue.CSF: 950.0,
    Tissue.GREY: 600.0,
    Tissue.WHITE: 480.0,
    Tissue.VENTRICLE: 1000.0,
    Tissue.VESSEL: 550.0,
}
PARENCHYMA = (Tissue.GREY, Tissue.WHITE)


@dataclass(frozen=True)
class DscSpec:
    """Acquisition and simulation settings; keyword arguments of :func:`write_dsc`."""

    shape: tuple[int, int, int] = (8, 64, 64)  # slices, rows, columns
    n_times: int = 50
    tr: float = 1.5  # s
    te: float = 0.03  # s
    snr: float = 50.0  # grey-matter baseline signal / noise sigma (see the module notes)
    slab_mm: float = 120.0
    fov_mm: float = 230.0
    aif_peak: float = 250.0  # arterial ΔR2* at the bolus peak, 1/s
    delay: tuple[float, float] = (6.0, 9.0)  # s, range of the territory's mean delay
    dispersion: tuple[float, float] = (1.0, 3.0)  # s, exponential dispersion time constant
    flow_drop: tuple[float, float] = (0.35, 0.7)  # territory CBF as a fraction of normal
    fine_dt: float = 0.05  # s, time grid of the convolutions
    venous_delay: float = 4.0  # s, arteries to sinuses
    venous_dispersion: float = 2.0  # s, exponential time constant of the venous outflow


@dataclass
class DscPatient:
    """One simulated patient on the (Z, Y, X) grid, slice 0 the lowest."""

    signal: np.ndarray  # (Z, Y, X, T) float32
    truth_tmax: np.ndarray  # (Z, Y, X) float32 s, 0 outside parenchyma
    tissue: np.ndarray  # grey and white matter
    territory: np.ndarray  # the delayed, dispersed region
    arteries: np.ndarray  # voxels carrying the arterial input (near the sella: known positions)
    eyes: np.ndarray  # the globes: bright fluid outside the skull that a brain mask must leave out
    aif: np.ndarray  # (T,) full-volume arterial ΔR2*, 1/s
    affine: np.ndarray
    times: np.ndarray
    te: float
    params: dict = field(default_factory=dict)

    def series(self) -> Series:
        """The signal as the loader would return it (for tests without a DICOM round trip)."""
        tr = float(self.times[1] - self.times[0])
        return Series(self.signal, self.affine, tr, self.times, self.te)


def gamma_variate(t: np.ndarray, onset: float, alpha: float = 3.0, beta: float = 1.5) -> np.ndarray:
    """Peak-normalised gamma variate starting at ``onset`` (Thompson 1964; Rosen 1990)."""
    x = np.clip(t - onset, 0.0, None) / (alpha * beta)
    return x**alpha * np.exp(alpha * (1.0 - x))


def simulate_dsc(rng: np.random.Generator, spec: DscSpec = DscSpec()) -> DscPatient:
    """Draw one patient: anatomy, haemodynamics, signal and ground truth."""
    z_n, y_n, x_n = spec.shape
    spacing = (spec.slab_mm / z_n, spec.fov_mm / y_n, spec.fov_mm / x_n)
    head = make_head(rng, spec.shape, spacing)
    labels = head.labels[::-1]  # slice 0 lowest: DICOM positions ascend with the index
    times = np.arange(spec.n_times) * spec.tr
    fine = np.arange(0.0, times[-1] + 4 * spec.tr, spec.fine_dt)

    onset = rng.uniform(6.0, 12.0)
    aif_fine = arterial_input(fine, onset, spec.aif_peak)
    territory, side = _territory(rng, labels, head, spacing)
    delay_normal = np.clip(0.5 + 0.4 * smooth_field(rng, spec.shape, (2, 8, 8)), 0.0, 1.5)
    mean_delay = rng.uniform(*spec.delay)
    delay_stroke = np.clip(mean_delay + 1.0 * smooth_field(rng, spec.shape, (2, 8, 8)), 2.0, None)
    delay = np.where(territory, delay_stroke, delay_normal)
    dispersion = rng.uniform(*spec.dispersion)
    flow_drop = rng.uniform(*spec.flow_drop)
    heterogeneity = 1.0 + 0.1 * smooth_field(rng, spec.shape, (1, 4, 4))

    scale = PerfusionConfig().scale
    delta_r2 = np.zeros((*spec.shape, spec.n_times), np.float32)
    truth = np.zeros(spec.shape, np.float32)
    for kind, normal in PHYSIOLOGY.items():
        for stroke in (False, True):
            where = (labels == kind) & (territory == stroke)
            if not where.any():
                continue
            perfusion = TissuePerfusion(normal.cbf * flow_drop, normal.cbv) if stroke else normal
            curve, peak_time = tissue_response(
                aif_fine, fine, perfusion, dispersion if stroke else 0.0, scale
            )
            delta_r2[where] = heterogeneity[where][:, None] * delayed(
                curve, fine, times, delay[where]
            )
            truth[where] = delay[where] + peak_time
    vessels = labels == Tissue.VESSEL
    arteries = vessels & _near_sella(head, spacing)
    veins = vessels & ~arteries
    partial = rng.uniform(0.4, 1.0, int(arteries.sum()))[:, None]
    delta_r2[arteries] = partial * np.interp(times, fine, aif_fine)[None, :]
    # Sinuses and cortical veins: the outflow, late and spread out but of the same area and
    # filling more of their voxel, so they outrank the arteries by area as on real scans.
    outflow = fftconvolve(aif_fine, _unit_exponential(fine, spec.venous_dispersion))[: len(fine)]
    partial = rng.uniform(0.4, 0.9, int(veins.sum()))[:, None]
    delta_r2[veins] = partial * np.interp(times - spec.venous_delay, fine, outflow, left=0)[None]

    s0 = np.zeros(max(Tissue) + 1, np.float32)
    s0[list(BASELINE)] = list(BASELINE.values())
    s0 = s0[labels]
    s0 *= 1.0 + 0.05 * smooth_field(rng, spec.shape, (4, 32, 32))  # coil sensitivity
    clean = s0[..., None] * np.exp(-spec.te * delta_r2)
    sigma = BASELINE[Tissue.GREY] / spec.snr
    noisy = np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape))

    tissue = np.isin(labels, PARENCHYMA)
    truth[~tissue] = 0.0
    params = {
        "side": side,
        "mean_delay_s": round(mean_delay, 3),
        "dispersion_s": round(dispersion, 3),
        "flow_fraction": round(flow_drop, 3),
        "bolus_onset_s": round(onset, 3),
        "spec": asdict(spec),
    }
    return DscPatient(
        signal=noisy.astype(np.float32),
        truth_tmax=truth,
        tissue=tissue,
        territory=territory & tissue,
        arteries=arteries,
        eyes=(labels == Tissue.CSF) & ~head.intracranial[::-1],
        aif=np.interp(times, fine, aif_fine).astype(np.float32),
        affine=dicom_affine(_ORIENTATION, _origin(spec), spacing[1:], spacing[0]),
        times=times,
        te=spec.te,
        params=params,
    )


def arterial_input(fine: np.ndarray, onset: float, peak: float) -> np.ndarray:
    """The arterial ΔR2* (1/s) on ``fine``: a gamma-variate first pass peaking at ``peak`` and a
    recirculation 11 s later at 12 % of it, wider."""
    return peak * (gamma_variate(fine, onset) + 0.12 * gamma_variate(fine, onset + 11.0, beta=3.0))


def tissue_response(
    aif_fine: np.ndarray,
    fine: np.ndarray,
    perfusion: TissuePerfusion,
    dispersion: float,
    scale: float,
) -> tuple[np.ndarray, float]:
    """Undelayed tissue ΔR2* on the uniform grid ``fine``, and the true Tmax it adds to a delay.

    ΔR2*(t) = CBF/k · (AIF ⊗ h)(t) with ``h`` = exp(−t/MTT), convolved with a unit-area
    exponential of time constant ``dispersion`` (s; none when 0), ``k`` = ``scale`` (the
    haematocrit/density factor of :class:`PerfusionConfig`). The second value is the time of the
    maximum of ``h`` (s): 0 without dispersion, so a voxel's true Tmax is its delay plus it.
    """
    kernel = _effective_residue(fine, perfusion.mtt, dispersion)
    curve = perfusion.cbf / 6000.0 / scale * fftconvolve(aif_fine, kernel)[: len(fine)]
    curve *= fine[1] - fine[0]
    return curve, fine[np.argmax(kernel)]  # np.float64: keeps float32 delays in float64


def delayed(
    curve: np.ndarray, fine: np.ndarray, times: np.ndarray, delay: np.ndarray
) -> np.ndarray:
    """``curve`` (on ``fine``) delayed by each of ``delay`` (N,) s and sampled at ``times``: (N, T);
    zero before the curve's start (a negative delay starts it earlier)."""
    shifted = times[None, :] - np.asarray(delay)[:, None]
    return np.interp(shifted, fine, curve, left=0)


def _effective_residue(fine: np.ndarray, mtt: float, dispersion: float) -> np.ndarray:
    """exp(−t/MTT), convolved with a unit-area exponential dispersion kernel when given."""
    residue = np.exp(-fine / mtt)
    if dispersion <= 0:
        return residue
    return fftconvolve(residue, _unit_exponential(fine, dispersion))[: len(fine)]


def _unit_exponential(fine: np.ndarray, tau: float) -> np.ndarray:
    """exp(−t/τ) with unit sum: a dispersion kernel that keeps the area of what it spreads."""
    kernel = np.exp(-fine / tau)
    return kernel / kernel.sum()


def _near_sella(head, spacing: tuple[float, float, float]) -> np.ndarray:
    """Voxels within 30 mm of the sella, on the (Z, Y, X) grid with slice 0 lowest.

    The head's vessels there are the carotid siphons, the basilar artery and the proximal
    middle cerebral branches; every other vessel is a sinus, a cortical vein or choroid plexus.
    """
    k, row, col = head.landmarks["sella"]
    k = head.shape[0] - 1 - k  # the stack was flipped: slice 0 lowest
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in head.shape), indexing="ij")
    inplane = np.hypot((y - row) * spacing[1], (x - col) * spacing[2])
    return (inplane < 30.0) & (np.abs(z - k) * spacing[0] < 30.0)


def _territory(
    rng: np.random.Generator, labels: np.ndarray, head, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, str]:
    """A middle-cerebral-artery-like wedge: lateral from deep white matter out to the cortex."""
    cz, cy, cx = head.landmarks["centre"]
    cz = labels.shape[0] - 1 - cz  # the stack was flipped: slice 0 lowest
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in labels.shape), indexing="ij")
    side = rng.choice([-1.0, 1.0])
    dz, dy, dx = (z - cz) * spacing[0], (y - cy) * spacing[1], (x - cx) * spacing[2] * side
    angle = np.arctan2(dy, dx) - np.deg2rad(rng.uniform(-20, 20))
    half = np.deg2rad(rng.uniform(35, 55)) + 0.25 * smooth_field(rng, labels.shape, (2, 10, 10))
    wedge = (np.abs(angle) < half) & (np.hypot(dx, dy) > 15.0) & (dz > -35.0) & (dz < 45.0)
    wedge &= np.isin(labels, PARENCHYMA)
    wedge = ndimage.binary_opening(wedge, structure=np.ones((1, 3, 3), bool))
    return wedge, "left" if side < 0 else "right"


_ORIENTATION = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def _origin(spec: DscSpec) -> np.ndarray:
    return np.array([-spec.fov_mm / 2, -spec.fov_mm / 2, -spec.slab_mm / 2])


def reference_tmax(patient: DscPatient) -> np.ndarray:
    """A vendor-like Tmax map: block-circulant SVD with automatic AIF, lightly smoothed, 0.1 s.

    Stands in for the commercial maps the study trained on: same family of method (and the same
    positive bias) as what sites get from their software, not the ground truth.
    """
    maps = compute_maps(patient.series(), PerfusionConfig(method="bsvd", workers=1))
    smooth = ndimage.gaussian_filter(maps.tmax, sigma=(0, 0.7, 0.7))
    weight = ndimage.gaussian_filter(maps.mask.astype(np.float32), sigma=(0, 0.7, 0.7))
    tmax = np.where(maps.mask, smooth / np.maximum(weight, 1e-3), 0.0)
    return np.round(np.clip(tmax, 0.0, None), 1).astype(np.float32)


def write_dsc(out: Path, n: int, seed: int = 0, **kw) -> Path:
    """Write ``n`` simulated patients under ``out`` (returned); keyword arguments set
    :class:`DscSpec`."""
    spec = DscSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})
    out = Path(out)
    for index in range(n):
        rng = np.random.default_rng([seed, index])
        patient = simulate_dsc(rng, spec)
        folder = out / f"patient_{index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        ids = _Identity(seed, index)
        _write_series(folder / "dsc", patient.signal, spec, ids, "DSC perfusion", rng)
        tmax = reference_tmax(patient)[..., None]
        _write_series(folder / "tmax", tmax * 10.0, spec, ids, "Tmax (s)", rng, slope=0.1)
        for name, volume in (("truth_tmax", patient.truth_tmax), ("tissue_mask", patient.tissue)):
            image = nib.Nifti1Image(
                np.transpose(volume.astype(np.float32), (2, 1, 0)), patient.affine
            )
            nib.save(image, folder / f"{name}.nii.gz")
        (folder / "params.json").write_text(json.dumps(patient.params, indent=2))
    return out


@dataclass(frozen=True)
class _Identity:
    """Made-up, de-identified patient and study identity; deterministic UIDs from the seed."""

    seed: int
    index: int

    def uid(self, *parts: object) -> str:
        return generate_uid(entropy_srcs=[str(self.seed), str(self.index), *map(str, parts)])


def _write_series(
    folder: Path,
    frames: np.ndarray,
    spec: DscSpec,
    ids: _Identity,
    description: str,
    rng: np.random.Generator,
    slope: float = 1.0,
) -> None:
    """One MR image file per (slice, time point) with real geometry and timing tags."""
    folder.mkdir(parents=True, exist_ok=True)
    z_n, rows, cols, t_n = frames.shape
    spacing = (spec.slab_mm / z_n, spec.fov_mm / rows, spec.fov_mm / cols)
    origin = _origin(spec)
    ds = _template(spec, ids, description, rows, cols, spacing, slope, t_n)
    names = rng.permutation(z_n * t_n)
    pixels = np.clip(np.round(frames), 0, 65535).astype(np.uint16)
    start = 10 * 3600.0  # 10:00:00
    for t in range(t_n):
        for z in range(z_n):
            number = t * z_n + z
            sop = ids.uid(description, number)
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.SOPInstanceUID = sop
            ds.InstanceNumber = number + 1
            ds.TemporalPositionIdentifier = t + 1
            position = origin + np.array([0.0, 0.0, z * spacing[0]])
            ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
            ds.SliceLocation = f"{position[2]:.10g}"
            moment = start + t * spec.tr + z * spec.tr / z_n  # slices spread over the TR
            ds.AcquisitionTime = _clock(moment)
            ds.ContentTime = ds.AcquisitionTime
            ds.PixelData = np.ascontiguousarray(pixels[z, ..., t]).tobytes()
            ds.save_as(folder / f"IMG{names[number]:05d}.dcm", enforce_file_format=True)


def _clock(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return f"{int(hours):02d}{int(minutes):02d}{secs:09.6f}"


def _template(
    spec: DscSpec,
    ids: _Identity,
    description: str,
    rows: int,
    cols: int,
    spacing: tuple[float, float, float],
    slope: float,
    n_times: int,
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("phantom", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.PatientName = f"PHANTOM^{ids.index:03d}"
    ds.PatientID = f"PHANTOM-{ids.seed}-{ids.index:03d}"
    ds.PatientSex = "O"
    ds.PatientBirthDate = ""
    ds.StudyInstanceUID = ids.uid("study")
    ds.SeriesInstanceUID = ids.uid("series", description)
    ds.FrameOfReferenceUID = ids.uid("frame")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20000101"
    ds.Modality = "MR"
    ds.SeriesDescription = description
    ds.SeriesNumber = 2 if description.startswith("Tmax") else 1
    ds.Manufacturer = "workbench phantom"
    ds.ScanningSequence, ds.SequenceVariant = "EP", "SK"
    ds.MRAcquisitionType = "2D"
    ds.EchoTime = f"{spec.te * 1000:g}"
    ds.RepetitionTime = f"{spec.tr * 1000:g}"
    ds.MagneticFieldStrength = "1.5"
    ds.NumberOfTemporalPositions = n_times
    ds.ImageOrientationPatient = [f"{v:g}" for v in _ORIENTATION]
    ds.PixelSpacing = [f"{spacing[1]:.10g}", f"{spacing[2]:.10g}"]
    ds.SliceThickness = f"{spacing[0]:.10g}"
    ds.SpacingBetweenSlices = f"{spacing[0]:.10g}"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", "0"
    return ds
