"""Calibration of a predicted spread (pertdit/metrics/calibration.py) on synthetic Gaussians, checked against
independent numpy / scipy computations: a calibrated sampler covers ~50 % / ~90 %, a too narrow one less."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pertdit.metrics.calibration import (
    PredictiveSpread,
    calibration_table,
    concat_layers,
    gaussian_spread,
    gene_coverage,
    prediction_calibration,
    sample_spread,
    spread_layer_names,
)

K, N, G = 8, 400, 50  # samples per profile, profiles, genes


def gaussian_world(seed: int = 0, sample_sd_factor: float = 1.0):
    """Per entry a Gaussian N(mu, s^2): the truth is one draw, the K samples K more (SD scaled by the factor)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(5.0, 2.0, size=(N, G))
    s = rng.uniform(0.2, 1.0, size=(N, G))
    truth = mu + s * rng.standard_normal((N, G))
    samples = mu + sample_sd_factor * s * rng.standard_normal((K, N, G))
    return truth, samples, mu, s


def coverage_of(table, interval: str, level: float) -> float:
    return float(table.set_index(["interval", "level"]).loc[(interval, level), "coverage"])


# tolerance: 4 binomial SDs of the overall coverage of N * G entries (entries independent here)
def tolerance(level: float) -> float:
    return 4 * np.sqrt(level * (1 - level) / (N * G))


@pytest.mark.parametrize("level", [0.5, 0.9])
@pytest.mark.parametrize("interval", ["gaussian", "pit"])
def test_a_calibrated_sampler_covers_the_nominal_level(interval, level):
    truth, samples, _, _ = gaussian_world()
    table = calibration_table(truth, sample_spread(samples, truth))
    assert coverage_of(table, interval, level) == pytest.approx(level, abs=tolerance(level))


@pytest.mark.parametrize("interval", ["gaussian", "pit"])
def test_a_too_narrow_sampler_is_over_confident(interval):
    truth, samples, _, _ = gaussian_world(sample_sd_factor=0.5)
    table = calibration_table(truth, sample_spread(samples, truth))
    for level in (0.5, 0.9):
        assert coverage_of(table, interval, level) < level - 10 * tolerance(level)


def test_sample_intervals_equal_an_independent_student_t_computation():
    truth, samples, _, _ = gaussian_world(seed=1)
    layers = sample_spread(samples, truth)
    mean, sd = samples.mean(0), samples.std(0, ddof=1)
    for level in (0.5, 0.9):
        half = stats.t.ppf(0.5 + level / 2, K - 1) * sd * np.sqrt(1 + 1 / K)
        np.testing.assert_allclose(layers[f"interval_{round(level * 100)}_lower"], mean - half, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layers[f"interval_{round(level * 100)}_upper"], mean + half, rtol=1e-5, atol=1e-5)
        inside = (truth >= mean - half) & (truth <= mean + half)
        table = calibration_table(truth, layers)
        assert coverage_of(table, "gaussian", level) == pytest.approx(inside.mean(), abs=2 / (N * G))


def test_pit_is_the_rank_of_the_truth_among_the_samples():
    truth, samples, _, _ = gaussian_world(seed=2)
    pit = sample_spread(samples, truth)["pit"]
    below = np.zeros((N, G))
    for k in range(K):  # count by hand: continuous draws, so no ties
        below += samples[k] < truth
    assert np.all(pit > below / (K + 1) - 1e-6) and np.all(pit < (below + 1) / (K + 1) + 1e-6)


def test_gaussian_spread_with_the_true_sd_is_calibrated_and_matches_scipy():
    truth, _, mu, s = gaussian_world(seed=3)
    layers = gaussian_spread(mu, s, truth)
    np.testing.assert_allclose(layers["pit"], stats.norm.cdf(truth, mu, s), rtol=1e-5, atol=1e-6)
    table = calibration_table(truth, layers)
    for level in (0.5, 0.9):
        assert coverage_of(table, "gaussian", level) == pytest.approx(level, abs=tolerance(level))


def test_per_gene_coverage_equals_numpy_per_column():
    truth, _, mu, s = gaussian_world(seed=4)
    layers = gaussian_spread(mu, s, truth)
    genes = [f"g{i}" for i in range(G)]
    table = gene_coverage(truth, layers, genes).query("interval == 'gaussian' and level == 0.9")
    z = stats.norm.ppf(0.95)
    expected = ((truth >= mu - z * s) & (truth <= mu + z * s)).mean(0)
    np.testing.assert_allclose(table["coverage"].to_numpy(), expected, atol=1e-6)
    assert table["gene"].tolist() == genes


def test_a_spread_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        sample_spread(np.zeros((1, 3, 4)))


def test_a_predictive_spread_holds_samples_or_a_gaussian_not_both():
    with pytest.raises(ValueError, match="either samples or a Gaussian"):
        PredictiveSpread(samples=np.zeros((2, 1, 1)), mean=np.zeros((1, 1)), sd=np.ones((1, 1)))
    with pytest.raises(ValueError, match="either samples or a Gaussian"):
        PredictiveSpread()
    assert PredictiveSpread(mean=np.zeros((1, 1)), sd=np.ones((1, 1))).kind == "gaussian"


def test_batches_of_layers_are_stacked_then_put_in_row_order():
    parts = [{"spread_sd": np.array([[1.0], [2.0]])}, {"spread_sd": np.array([[3.0]])}]
    stacked = concat_layers(parts, order=np.array([2, 0, 1]))
    np.testing.assert_array_equal(stacked["spread_sd"][:, 0], [3.0, 1.0, 2.0])


def test_a_prediction_file_with_spread_layers_gives_its_calibration():
    import anndata as ad

    truth, samples, _, _ = gaussian_world(seed=5)
    layers = sample_spread(samples, truth)
    adata = ad.AnnData(X=samples.mean(0).astype(np.float32), layers={"truth": truth.astype(np.float32), **layers})
    table = prediction_calibration(adata)
    assert table is not None and set(table["interval"]) == {"gaussian", "pit"}
    assert coverage_of(table, "pit", 0.9) == pytest.approx(0.9, abs=tolerance(0.9))
    del adata.layers["spread_sd"]
    assert prediction_calibration(adata) is None
    assert spread_layer_names()[0] == "spread_sd"
