"""Tmax and CBF by the Bayesian template fit (workbench/perfusion/templates.py): known continuous
delays, other TRs and AIF shapes than the phantom's, and the noise-free model itself."""

import numpy as np
import pytest

from workbench.perfusion import PerfusionConfig, deconvolve, fit_templates
from workbench.perfusion.templates import TemplatePrior, noise_level, template_bank
from workbench.phantom.perfusion import (
    TissuePerfusion,
    arterial_input,
    delayed,
    gamma_variate,
    tissue_response,
)

SCALE = PerfusionConfig().scale
GREY = TissuePerfusion(cbf=55.0, cbv=4.5)


def _mae(estimate: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(estimate - truth)[where].mean())


@pytest.mark.parametrize("dispersion", [None, (1.0, 3.0)])
def test_tmax_loses_the_svd_delay_bias_on_continuous_delays(bench, dispersion):
    """The delay benchmark's simulator at SNR 50 (a seed the benchmark does not report): the
    issue's targets (MAE ≤ 1.0 s normal, ≤ 1.5 s lesion) with a margin for 1,200 voxels, and
    well under oSVD's error and bias."""
    case = bench.DelayCase(patients=3, voxels=400, dispersion=dispersion)
    patients = bench.simulate(case, seed=11)
    truth = np.concatenate([p.truth for p in patients])
    fit = np.concatenate([fit_templates(p.curves, p.aif, p.tr).tmax for p in patients])
    osvd = np.concatenate([deconvolve(p.curves, p.aif, p.tr).delay for p in patients])
    assert _mae(fit, truth, truth < bench.NORMAL) <= 1.0 + 0.2
    assert _mae(fit, truth, truth > bench.PENUMBRA) <= 1.5 + 0.2
    everywhere = np.ones(len(truth), bool)
    assert _mae(fit, truth, everywhere) < 0.6 * _mae(osvd, truth, everywhere)
    assert abs((fit - truth).mean()) < 1.0 < (osvd - truth).mean()


def _wide_aif(fine: np.ndarray) -> np.ndarray:
    """Not the phantom's: a slower first pass (α 2, β 2.5) and a larger recirculation."""
    return 180.0 * (gamma_variate(fine, 9.0, 2.0, 2.5) + 0.3 * gamma_variate(fine, 24.0, 3.0, 3.0))


def _phantom_aif(fine: np.ndarray) -> np.ndarray:
    return arterial_input(fine, 8.0, 250.0)


def _grey_matter(tr: float, aif_of) -> dict[str, np.ndarray]:
    """Grey matter delayed by −2..10 s (no dispersion), ΔR2* noise as at SNR 50 (σ = 1/(SNR·TE)):
    the template fit's and oSVD's Tmax error and CBF over the truth."""
    rng = np.random.default_rng(5)
    times = np.arange(int(90 / tr)) * tr
    fine = np.arange(0.0, times[-1] + 15.0, 0.05)
    aif_fine = aif_of(fine)
    curve, _ = tissue_response(aif_fine, fine, GREY, 0.0, SCALE)
    delay = rng.uniform(-2.0, 10.0, 500)
    curves = delayed(curve, fine, times, delay) + rng.normal(0, 1 / (50 * 0.03), (500, len(times)))
    aif = np.interp(times, fine, aif_fine)
    fit, osvd = fit_templates(curves, aif, tr), deconvolve(curves, aif, tr)
    return {
        "error": fit.tmax - delay,
        "cbf": fit.flow * 6000 * SCALE / GREY.cbf,
        "osvd_error": osvd.delay - delay,
        "osvd_cbf": osvd.peak * 6000 * SCALE / GREY.cbf,
    }


@pytest.fixture(scope="module")
def phantom_protocol():
    return _grey_matter(1.5, _phantom_aif)


@pytest.mark.parametrize(("tr", "aif_of"), [(1.0, _wide_aif), (2.0, _phantom_aif)])
def test_other_trs_and_aif_shapes_read_as_well_as_the_phantoms(phantom_protocol, tr, aif_of):
    """The bank is made from the series' own AIF at its own TR, so a TR of 1 s with a wide
    bolus, or of 2 s, reads Tmax and CBF as well as the phantom's 1.5 s protocol does (the
    small late bias is the prior's: half of the delayed tissue may be dispersed); oSVD reads
    Tmax late and CBF low at every one of them."""
    found = _grey_matter(tr, aif_of)
    assert abs(found["error"]).mean() < 0.5 * abs(found["osvd_error"]).mean()
    assert abs(found["error"]).mean() < abs(phantom_protocol["error"]).mean() + 0.2
    assert abs(found["error"].mean() - phantom_protocol["error"].mean()) < 0.2
    assert np.median(found["cbf"]) == pytest.approx(np.median(phantom_protocol["cbf"]), abs=0.05)
    assert abs(np.median(found["cbf"]) - 1) < 0.15
    assert found["osvd_error"].mean() > 1.5 and np.median(found["osvd_cbf"]) < 0.85


@pytest.mark.parametrize(("delay", "tau"), [(0.0, 0.0), (5.0, 0.0), (5.0, 2.0)])
def test_noise_free_curves_read_their_own_model(delay, tau):
    """A curve made as the phantom makes it, with δ, MTT and τ on the bank's grid, reads its
    Tmax (δ plus the dispersed residue's peak time) and CBF back when the noise is tiny."""
    tr = 1.5
    times = np.arange(50) * tr
    fine = np.arange(0.0, times[-1] + 10.0, 0.01)
    aif_fine = _phantom_aif(fine)
    white = TissuePerfusion(cbf=11.0, cbv=2.2)  # MTT 12 s, on the grid
    curve, peak_time = tissue_response(aif_fine, fine, white, tau, SCALE)
    curves = delayed(curve, fine, times, np.array([delay]))
    fit = fit_templates(curves, np.interp(times, fine, aif_fine), tr, noise=1e-3)
    assert fit.tmax[0] == pytest.approx(delay + peak_time, abs=0.15)
    assert fit.flow[0] * 6000 * SCALE == pytest.approx(white.cbf, rel=0.03)


def test_the_bank_leaves_out_what_the_prior_rules_out():
    """No dispersion before the AIF: undelayed curves are exponentials only, and every curve is
    of unit norm with its Tmax at or after its delay."""
    bank = template_bank(_phantom_aif(np.arange(50) * 1.5), 1.5)
    np.testing.assert_allclose(np.linalg.norm(bank.unit, axis=1), 1.0, rtol=1e-5)
    early = bank.tmax < 0
    assert early.any() and np.all(bank.log_prior[early] == 0)  # τ = 0 has all the weight
    assert bank.tmax.min() == pytest.approx(TemplatePrior().delays[0])


def test_noise_level_reads_the_baseline_before_the_bolus():
    rng = np.random.default_rng(2)
    times = np.arange(60) * 1.5
    aif = _phantom_aif(times)
    curves = 30 * np.clip(times - 12, 0, None)[None] * np.ones((200, 1))  # rises after the AIF
    curves += rng.normal(0, 0.7, curves.shape)
    assert noise_level(curves, aif) == pytest.approx(0.7, rel=0.15)
