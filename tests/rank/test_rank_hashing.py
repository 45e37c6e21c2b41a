"""The serving encoder's memoised hashing gives the training encoder's buckets, for every kind of column."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.rank.calibration import fit_calibrator
from adpilot.rank.features import _buckets, hash_bucket


@pytest.mark.parametrize("values", [
    np.array([5, 7, 5, 123456789012], np.int64),
    np.array(["a", "b", "a", "ad-9"], dtype=object),
    np.array(["5", "7"], dtype=object),
    [5, "5", None, 2.5, float("nan"), True],
    np.array([1.0, 2.0, np.nan]),
    "top",
    7,
])
def test_memoised_buckets_equal_vectorised(values):
    memo: dict = {}
    want = hash_bucket(np.asarray(values, dtype=object).reshape(-1), 1024)
    for _ in range(2):  # cold, then warm memo
        np.testing.assert_array_equal(_buckets(values, 1024, memo), want)


def test_memo_keys_never_mix_text_forms():
    """5 and 5.0 are equal dictionary keys but different texts ("5" vs "5.0"): floats never enter the memo."""
    memo: dict = {}
    _buckets(np.array([5]), 1024, memo)
    np.testing.assert_array_equal(_buckets([5.0], 1024, memo), hash_bucket(["5.0"], 1024))


def test_calibration_from_logits_equals_from_probabilities():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=6, size=2000)
    p = 1 / (1 + np.exp(-z))
    y = (rng.uniform(size=2000) < p**1.5).astype(float)
    for method in ("platt", "isotonic", "none"):
        cal = fit_calibrator(y, p, method)
        np.testing.assert_allclose(cal.apply_logit(z), cal.apply(p), rtol=1e-9, atol=1e-12)
