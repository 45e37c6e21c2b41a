"""The serving encoder's memoised hashing gives the training encoder's buckets, for every kind of column."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.rank import features
from adpilot.rank.base import FeatureSpec
from adpilot.rank.calibration import fit_calibrator
from adpilot.rank.features import BucketMemo, FeatureEncoder, hash_bucket


@pytest.mark.parametrize("values", [
    np.array([5, 7, 5, 123456789012], np.int64),
    np.array(["a", "b", "a", "ad-9"], dtype=object),
    np.array(["5", "7"], dtype=object),
    [5, "5", None, 2.5, float("nan"), True],
    [np.int64(5), 7, np.int32(-3)],  # a history of numbers: the sorted-array memo
    [2**70, 5],  # beyond int64: the dict
    [np.uint64(2**63), np.int64(5)],  # numpy would make these floats
    [True, 1],
    ["a", "b", "a"],
    [],
    np.array([2**63 + 5, 3], np.uint64),
    np.array([3, 9], np.uint8),
    np.array([1.0, 2.0, np.nan]),
    "top",
    7,
])
def test_memoised_buckets_equal_vectorised(values):
    memo = BucketMemo(1024)
    want = hash_bucket(np.asarray(values, dtype=object).reshape(-1), 1024)
    for _ in range(2):  # cold, then warm memo
        got = memo.buckets(values)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)


def test_integer_memo_grows_and_forgets(monkeypatch):
    """Integer columns arriving in pieces (some values new, some known, some beyond the sorted keys) get the
    vectorised buckets, also across the memory limit."""
    monkeypatch.setattr(features, "MEMO_LIMIT", 50)
    rng = np.random.default_rng(0)
    memo = BucketMemo(997)
    for _ in range(20):
        values = rng.integers(-10**12, 10**12, 30) if rng.uniform() < 0.3 else rng.integers(0, 60, 30)
        np.testing.assert_array_equal(memo.buckets(values), hash_bucket(values, 997))
        np.testing.assert_array_equal(memo.buckets(values.tolist()), hash_bucket(values, 997))
        assert len(memo.ints) <= 50 and np.all(np.diff(memo.ints) > 0)


def test_serving_encoder_equals_training_encoder():
    """The memoised encoder (integer columns through the sorted array, strings through the dict, histories per
    request) gives the unmemoised encoder's arrays, cold and warm, whatever mix of column kinds a request has."""
    spec = FeatureSpec(categorical=("ad_id", "brand", "campaign_id", "slot", "geo", "price"),
                       sequences=(("hist_ad_id", "ad_id"), ("hist_brand", "brand")), vectors=(("ad_vec", 3),
                                                                                          ("hist_vec", 2)),
                       buckets={"ad_id": 4096, "brand": 64, "campaign_id": 64, "slot": 16}, max_seq_len=4)
    rng = np.random.default_rng(1)
    n = 7
    hist = [np.int64(v) for v in rng.integers(0, 500, 6)]
    frames = [
        {"ad_id": rng.integers(0, 500, n), "brand": rng.integers(0, 40, n).astype(np.int32),
         "campaign_id": np.array([f"c{v}" for v in rng.integers(0, 9, n)], dtype=object),
         "slot": "top", "geo": 7, "price": np.array([1.5, np.nan, 2, 3, 4, 5, 6]),
         "hist_ad_id": [hist] * n, "hist_brand": [["a", "b"], None, [], ["c"] * 9, ["a"], ["b"], ["d"]],
         "ad_vec": rng.normal(size=(n, 3)), "hist_vec": np.ones(2)},
        {"ad_id": np.array([str(v) for v in rng.integers(0, 500, n)], dtype=object),
         "brand": [None, 3, "x", 4, 5, 6, 7], "hist_ad_id": [hist] * n},  # the rest missing
        {"ad_id": np.array([2**40]), "slot": "side", "hist_ad_id": [hist[:2]]},  # a request's own row
    ]
    served, trained = FeatureEncoder(spec, memoize=True), FeatureEncoder(spec)
    for frame in frames + frames:
        got, want = served.encode(frame, strict=False), trained.encode(frame, strict=False)
        for name in ("ids", "seqs", "dense", "vectors"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


def test_memo_keys_never_mix_text_forms():
    """5 and 5.0 are equal dictionary keys but different texts ("5" vs "5.0"): floats never enter the memo."""
    memo = BucketMemo(1024)
    memo.buckets(np.array([5]))
    memo.buckets([5])
    np.testing.assert_array_equal(memo.buckets([5.0]), hash_bucket(["5.0"], 1024))
    np.testing.assert_array_equal(memo.buckets(np.array([5.0, 1.0])), hash_bucket(["5.0", "1.0"], 1024))
    memo.buckets(np.array(["5", "True"], dtype=object))  # then columns of numbers/bools as objects: not "5"
    for values in ([5, True], [5.0, "5"], [np.int64(5)], [np.str_("True"), 5]):
        column = np.array(values, dtype=object)
        np.testing.assert_array_equal(memo.buckets(column), hash_bucket(column, 1024))


def test_calibration_from_logits_equals_from_probabilities():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=6, size=2000)
    p = 1 / (1 + np.exp(-z))
    y = (rng.uniform(size=2000) < p**1.5).astype(float)
    for method in ("platt", "isotonic", "none"):
        cal = fit_calibrator(y, p, method)
        np.testing.assert_allclose(cal.apply_logit(z), cal.apply(p), rtol=1e-9, atol=1e-12)
