"""PerturbationFeatures: shapes, the masked mean, row look-up."""
import numpy as np
import pytest

from pertdit.errors import RepresentationError
from pertdit.perturbation import PerturbationFeatures


def _features(rng=np.random.default_rng(0)):
    tokens = rng.normal(size=(4, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    return PerturbationFeatures(tokens, mask)


def test_pooled_is_the_mean_of_the_real_tokens_only():
    features = _features()
    expected = np.stack([features.tokens[i][features.mask[i]].mean(axis=0) for i in range(3)])
    pooled = features.pooled(chunk_elements=16)  # chunks of one row: the chunked path
    np.testing.assert_allclose(pooled[:3], expected, rtol=1e-6)
    assert pooled.shape == (4, 3) and pooled.dtype == np.float32
    np.testing.assert_array_equal(pooled[3], 0.0)  # no real token -> zeros, not NaN


def test_mask_must_match_tokens():
    with pytest.raises(RepresentationError, match="mask must be bool"):
        PerturbationFeatures(np.zeros((2, 3, 4), np.float32), np.ones((2, 4), bool))
    with pytest.raises(RepresentationError, match="mask must be bool"):
        PerturbationFeatures(np.zeros((2, 3, 4), np.float32), np.ones((2, 3), np.float32))
    with pytest.raises(RepresentationError, match=r"\(N, L, D\)"):
        PerturbationFeatures(np.zeros((2, 4), np.float32), np.ones((2, 4), bool))


def test_lookup_maps_conditions_to_rows_and_names_a_missing_one():
    features = _features()
    features.pairs = [("C", 0.1), ("C", 1.0), ("CC", 0.1), ("O", 10.0)]
    rows = features.lookup(["CC", "C", "O"], [np.float32(0.1), 1.0, 10])  # float32 0.1 is the same dose
    np.testing.assert_array_equal(rows, [2, 1, 3])
    with pytest.raises(RepresentationError, match="'CCC'"):
        features.lookup(["CCC"], [0.1])


def test_take_keeps_rows_and_pairs():
    features = _features()
    features.pairs = [("A", 1.0), ("B", 1.0), ("C", 1.0), ("D", 1.0)]
    sub = features.take([2, 0])
    np.testing.assert_array_equal(sub.tokens, features.tokens[[2, 0]])
    assert sub.pairs == [("C", 1.0), ("A", 1.0)]
