"""The decision path's shortcuts give what the plain computations give: the lazy candidate batch, the auction's
sorts without a tie-break sort, Thompson sampling one creative at a time."""

from __future__ import annotations

import numpy as np
import pytest
from deliver_world import make_world
from test_deliver_engine import engine, request

from adpilot.deliver.auction import best_per_group, rank
from adpilot.deliver.bandits import ThompsonCreatives
from adpilot.deliver.base import CandidateBatch


class RecordingScorer:
    """Reads only the priors, and records which gathered fields the batch then holds."""

    def __init__(self) -> None:
        self.batches: list[CandidateBatch] = []

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(batch)
        return np.nan_to_num(batch.prior_ctr, nan=0.05), np.full(len(batch), 0.1)


def test_batch_gathers_only_what_the_scorer_reads() -> None:
    scorer = RecordingScorer()
    decision = engine(make_world(scorer=scorer)).decide(request(user_id="u1"))
    assert decision.ads
    batch = scorer.batches[0]
    held = vars(batch)
    assert "prior_ctr" in held and "ad_vectors" not in held and "ad_ids" not in held
    # read later, the columns are those of the scored candidates, row-aligned
    assert batch.ad_vectors.shape == (len(batch), 16) and len(batch.ad_ids) == len(batch)
    assert decision.ads[0].ad_id in batch.ad_ids.tolist()
    assert set(batch.campaign_ids.tolist()) == {a.split("_")[0].replace("a", "c") for a in batch.ad_ids.tolist()}
    assert all(item.startswith("p") for item in batch.recent_items)
    with pytest.raises(AttributeError, match="read-only"):
        batch.slot = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="no attribute"):
        _ = batch.not_a_field


def test_batch_built_with_every_field_works_as_before() -> None:
    batch = CandidateBatch(ad_ids=np.array(["a", "b"], dtype=object), product_ids=np.array(["p", "q"], dtype=object),
                           ad_vectors=np.eye(2, dtype=np.float32), prior_ctr=np.full(2, np.nan),
                           prior_cvr=np.full(2, np.nan), user_vector=None, context_vector=None, user_id=None,
                           recent_items=(), slot="home", device=None, geo=None, hour=3)
    assert len(batch) == 2 and batch.campaign_ids is None and batch.segment is None and batch.hour == 3


def reference_best(groups: np.ndarray, value: np.ndarray) -> np.ndarray:
    order = np.lexsort((-value, groups))
    first = np.ones(len(order), dtype=bool)
    first[1:] = groups[order][1:] != groups[order][:-1]
    return np.sort(order[first])


def test_auction_sorts_match_the_tie_breaking_sorts() -> None:
    gen = np.random.default_rng(0)
    for case in range(600):
        n = int(gen.integers(0, 40))
        groups = gen.integers(0, (3, 50, 1000)[case % 3], n)
        value = gen.choice([0.5, 1.0, 2.0], n) if case % 4 == 0 else gen.random(n) * 10  # ties, or none
        assert best_per_group(groups, value).tolist() == reference_best(groups, value).tolist()
        a, b = np.random.default_rng(case), np.random.default_rng(case)
        eligible = (np.isfinite(value) & (value > 0) & (value >= 0.7)).nonzero()[0]
        ties = a.random(len(eligible))
        expected = eligible[np.lexsort((ties, -value[eligible]))]
        assert rank(value, 0.7, b).tolist() == expected.tolist()
        assert a.random() == b.random()  # the same draws were consumed


def test_thompson_draws_the_same_stream_as_one_array_draw() -> None:
    bandit = ThompsonCreatives(prior_strength=20.0)
    gen = np.random.default_rng(1)
    for seed in range(300):
        n = int(gen.integers(1, 5))
        prior = gen.uniform(0.001, 0.2, n)
        prior[gen.random(n) < 0.3] = np.nan
        impressions, clicks = gen.integers(0, 500, n), gen.integers(0, 80, n)
        p = np.clip(np.where(np.isnan(prior), 0.5, prior), 1e-4, 1 - 1e-4)
        capped = np.minimum(clicks, impressions)
        expected = np.random.default_rng(seed).beta(20 * p + capped, 20 * (1 - p) + impressions - capped)
        assert bandit.select(prior.tolist(), impressions.tolist(), clicks.tolist(),
                             np.random.default_rng(seed)) == int(np.argmax(expected))


def test_a_clock_lent_by_the_same_second_equals_a_fresh_one() -> None:
    """Within one second the previous clock's calendar is reused; hour, day and day fraction must equal a clock
    computed afresh, bit for bit — across DST changes, day ends and microsecond rounding up to the next second."""
    from datetime import datetime
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from adpilot.deliver.targeting import LocalClock

    zones = tuple(ZoneInfo(z) for z in ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "Asia/Kolkata"))
    campaigns = SimpleNamespace(timezones=zones)
    rng = np.random.default_rng(0)
    edges = [datetime(2026, 3, 29, 1, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp(),  # Berlin springs forward
             datetime(2026, 11, 1, 6, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp(),  # New York falls back
             datetime(2026, 11, 26, 16, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp()]  # midnight in Shanghai
    times = [e + d for e in edges for d in (-1.0, -0.9999996, -1e-7, 0.0, 0.4999995, 0.9999999, 1.0)]
    times += list(1.7e9 + np.cumsum(rng.exponential(0.01, 3000)))
    previous = None
    for now in times:
        fresh = LocalClock.at(campaigns, now)
        lent = LocalClock.at(campaigns, now, previous)
        previous = lent
        want = [datetime.fromtimestamp(now, tz) for tz in zones]
        assert lent.day == fresh.day == tuple(w.date().isoformat() for w in want)
        assert lent.hour.tolist() == fresh.hour.tolist() == [w.hour for w in want]
        seconds = [w.hour * 3600 + w.minute * 60 + w.second + w.microsecond / 1e6 for w in want]
        assert lent.day_fraction.tolist() == fresh.day_fraction.tolist() == [s / 86400.0 for s in seconds]
