"""The continuous-delay Tmax benchmark's truth (bench/perfusion_delay.py), on noise-free curves."""

import numpy as np
import pytest

from workbench.perfusion import PerfusionConfig, deconvolve
from workbench.perfusion.deconvolution import deconvolve_loop
from workbench.phantom.perfusion import TissuePerfusion, arterial_input, tissue_response


def test_without_dispersion_the_true_tmax_is_the_imposed_delay(bench):
    case = bench.DelayCase(patients=1, voxels=300)
    patient = bench.simulate_patient(np.random.default_rng(0), case, noise=False)
    delay = np.random.default_rng(0)  # the same draws, in the simulator's order
    delay.uniform(6.0, 12.0), delay.uniform(*case.spec.flow_drop), delay.choice(2, case.voxels)
    np.testing.assert_array_equal(patient.truth, delay.uniform(*case.delay, case.voxels))


@pytest.mark.parametrize("tau", [1.0, 2.0, 3.0])
def test_dispersion_adds_the_peak_time_of_the_dispersed_residue(tau):
    """h = exp(−t/MTT) ⊗ exp(−t/τ)/τ peaks at ln(MTT/τ)·MTT·τ/(MTT − τ): the truth adds that."""
    fine = np.arange(0.0, 80.0, 0.05)
    perfusion = TissuePerfusion(cbf=22.0 * 0.5, cbv=2.2)  # hypoperfused white matter, MTT 12 s
    mtt = perfusion.mtt
    _, peak_time = tissue_response(
        arterial_input(fine, 8.0, 250.0), fine, perfusion, tau, PerfusionConfig().scale
    )
    # on the simulator's 50 ms grid, within two of its samples
    assert peak_time == pytest.approx(np.log(mtt / tau) * mtt * tau / (mtt - tau), abs=0.1)
    assert tissue_response(arterial_input(fine, 8.0, 250.0), fine, perfusion, 0.0, 1.0)[1] == 0


@pytest.mark.parametrize(("early", "late"), [(-1.5, 0.0), (0.0, 1.5), (3.0, 7.5)])
@pytest.mark.parametrize("method", ["bsvd", "osvd"])
def test_a_delay_longer_by_whole_trs_reads_exactly_that_much_later(bench, early, late, method):
    """Noise-free, a curve delayed by k TRs more is the same samples shifted by k, and the
    block-circulant methods' Tmax moves by exactly k TRs: the simulated delay is where the truth
    says it is, and what remains of Tmax − truth is the method's own bias."""
    tmax, truth = {}, {}
    for delay in (early, late):
        case = bench.DelayCase(patients=1, voxels=20, delay=(delay, delay))
        patient = bench.simulate_patient(np.random.default_rng(1), case, noise=False)
        tmax[delay] = deconvolve(patient.curves, patient.aif, patient.tr, method).delay
        truth[delay] = patient.truth
        tr = patient.tr
    np.testing.assert_array_equal(truth[late] - truth[early], late - early)
    np.testing.assert_allclose(tmax[late] - tmax[early], late - early, atol=1e-3)
    assert np.all(np.abs(tmax[early] - truth[early]) < 3 * tr)  # late, as SVD is, not lost


@pytest.mark.parametrize("method", ["bsvd", "osvd"])
def test_noise_free_half_rise_is_within_half_a_tr_of_the_imposed_delay(bench, method):
    """Without noise or dispersion the residue's half-rise (``Residue.onset``) finds every
    continuous delay in −3..12 s to within half a TR, where its peak (Tmax) reads up to 3 s late."""
    case = bench.DelayCase(patients=1, voxels=300)
    patient = bench.simulate_patient(np.random.default_rng(7), case, noise=False)
    residue = deconvolve(patient.curves, patient.aif, patient.tr, method, onset=True)
    assert np.abs(residue.onset - patient.truth).max() < patient.tr / 2
    assert deconvolve(patient.curves, patient.aif, patient.tr, method).onset is None


@pytest.mark.parametrize("method", ["ssvd", "bsvd", "osvd"])
def test_vectorised_half_rise_equals_the_per_voxel_loop(bench, method):
    case = bench.DelayCase(patients=1, voxels=60)
    patient = bench.simulate_patient(np.random.default_rng(8), case)
    args = (patient.curves, patient.aif, patient.tr, method)
    fast, slow = deconvolve(*args, onset=True), deconvolve_loop(*args, onset=True)
    np.testing.assert_array_equal(fast.delay, slow.delay)
    np.testing.assert_allclose(fast.onset, slow.onset, atol=1e-3)
