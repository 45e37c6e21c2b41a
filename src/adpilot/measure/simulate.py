"""Simulation: days of synthetic-world traffic through the real decision engine, with clicks and conversions drawn
from the world's true probabilities, comparing delivery policies on identical traffic and budgets.

Every policy runs :class:`~adpilot.deliver.engine.DecisionEngine` — the serving path itself — on its own counters;
policies differ only in what the engine is given: the scorer, and whether it sees the user and the page/query.
Feedback (impressions, clicks, conversions) goes back through the engine hour by hour, so budgets, pacing and the
creative bandit learn as they would live. Lift is measured on the *true* click probability of each impression,
paired over the same requests, with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adpilot.config import Settings
from adpilot.deliver.base import CandidateBatch, Scorer
from adpilot.deliver.counters import InProcessCounters
from adpilot.deliver.engine import DecisionEngine, EngineConfig
from adpilot.deliver.feedback import AdEvent
from adpilot.deliver.snapshot import Snapshot
from adpilot.errors import check_scalar
from adpilot.schema import AdRequest
from adpilot.store.privacy import pseudonymise


class ConstantScorer:
    """Every ad the same pCTR and pCVR: the auction then ranks on bids alone (untargeted delivery)."""

    def __init__(self, ctr: float, cvr: float) -> None:
        self.ctr, self.cvr = check_scalar(ctr, "ctr", ge=0, le=1), check_scalar(cvr, "cvr", ge=0, le=1)

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        k = len(batch.ad_ids)
        return np.full(k, self.ctr), np.full(k, self.cvr)


class PopularityScorer:
    """Each ad's smoothed historical CTR and CVR, the same for every user (popularity delivery)."""

    def __init__(self, ctr: float, cvr: float) -> None:
        self.fallback = ConstantScorer(ctr, cvr)

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        ctr, cvr = self.fallback.score(batch)
        return (np.where(np.isfinite(batch.prior_ctr), batch.prior_ctr, ctr),
                np.where(np.isfinite(batch.prior_cvr), batch.prior_cvr, cvr))


UNTARGETED = ("geo", "device", "hour", "audience", "purchased", "negative_keyword")


@dataclass(frozen=True)
class SimPolicy:
    """One way of delivering: the scorer, whether the engine sees the user (profile, interest vector) and the
    page/query context, and the engine configuration (an untargeted baseline skips the targeting filters)."""

    name: str
    scorer: Scorer
    personalised: bool
    contextual: bool
    config: EngineConfig = field(default_factory=EngineConfig)


@dataclass(frozen=True)
class SimResult:
    """Every impression of every policy (one row each) and the budgets they ran under."""

    impressions: pd.DataFrame
    requests_per_policy: int
    budgets: pd.DataFrame  # campaign_id, total_budget, daily_budget

    def summary(self, baseline: str, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
        """Per policy: impressions, clicks, conversions, CTR, CVR, spend, revenue, ROI, and true-CTR lift over
        ``baseline`` with a 95% paired bootstrap interval over requests."""
        return summarise(self.impressions, self.requests_per_policy, baseline, n_boot, seed)

    def pacing(self, policy: str, top: int = 4) -> pd.DataFrame:
        """Spend and a uniform plan per hour of the first simulated day (the plot accumulates them), for the
        ``top`` spenders of ``policy``: columns campaign, hour, spend, plan."""
        frame = self.impressions[self.impressions["policy"] == policy]
        if frame.empty:
            return pd.DataFrame(columns=["campaign", "hour", "spend", "plan"])
        first = frame["ts"].dt.floor("D").min()
        day = frame[frame["ts"].dt.floor("D") == first]
        names = day.groupby("campaign_id")["charged"].sum().nlargest(top).index
        daily = self.budgets.set_index("campaign_id")["daily_budget"]
        hours = np.arange(24)
        rows = []
        for name in names:
            spent = day[day["campaign_id"] == name].groupby(day["ts"].dt.hour)["charged"].sum()
            plan = np.full(24, float(daily.get(name, np.nan)) / 24)
            rows.append(pd.DataFrame({"campaign": name, "hour": hours,
                                      "spend": spent.reindex(hours, fill_value=0.0).to_numpy(), "plan": plan}))
        return pd.concat(rows, ignore_index=True)

    def overspend(self) -> float:
        """Largest spend over a campaign's total budget, as a share of that budget (0 = none overspent)."""
        spend = self.impressions.groupby(["policy", "campaign_id"])["charged"].sum().reset_index()
        merged = spend.merge(self.budgets, on="campaign_id")
        over = (merged["charged"] - merged["total_budget"]) / merged["total_budget"].where(merged["total_budget"] > 0)
        return float(max(0.0, over.max(skipna=True))) if len(over) else 0.0


def simulate(world: object, snapshot_for: Callable[[Scorer], Snapshot], policies: Sequence[SimPolicy],
             settings: Settings, days: Sequence[int], requests_per_day: int, seed: int = 0,
             budgets: pd.DataFrame | None = None) -> SimResult:
    """Run every policy over the same ``requests_per_day`` requests on each of ``days`` of ``world``.

    ``world`` is an :class:`adpilot.datasets.world.World` (truth oracle and traffic); ``snapshot_for(scorer)``
    builds the serving snapshot with that scorer; user ids are pseudonymised with ``settings.secret`` exactly as
    ingest did, so profiles match.
    """
    check_scalar(requests_per_day, "requests_per_day", ge=1)
    if not policies:
        raise ValueError("`policies` must name at least one policy")
    traffic = pd.concat([world.traffic(day, requests_per_day, seed).to_pandas() for day in days],  # type: ignore[attr-defined]
                        ignore_index=True)
    traffic["pseudo_id"] = [pseudonymise(u, settings.secret) for u in traffic["user_id"]]
    rows: list[pd.DataFrame] = []
    for policy in policies:
        engine = DecisionEngine(snapshot_for(policy.scorer), InProcessCounters(), settings, seed=seed,
                                config=policy.config)
        rng = np.random.default_rng([seed, len(rows)])
        rows.append(_run_policy(world, engine, policy, traffic, rng))
    frame = pd.concat(rows, ignore_index=True)
    if budgets is None:
        budgets = pd.DataFrame(columns=["campaign_id", "total_budget", "daily_budget"])
    return SimResult(frame, len(traffic), budgets)


def _requests(policy: SimPolicy, batch: pd.DataFrame) -> list[AdRequest]:
    return [
        AdRequest(
            request_id=r.request_id, user_id=r.pseudo_id if policy.personalised else None, slot=r.slot,
            page=r.page if policy.contextual else None, query=r.query if policy.contextual else None,
            device=r.device, geo=r.geo if policy.personalised else None, ts=r.ts.to_pydatetime(),
            consent_personalisation=bool(r.consent_personalisation) and policy.personalised,
        )
        for r in batch.itertuples(index=False)
    ]


def _run_policy(world: object, engine: DecisionEngine, policy: SimPolicy, traffic: pd.DataFrame,
                rng: np.random.Generator) -> pd.DataFrame:
    """Decide an hour of requests, then draw and feed back their outcomes, hour by hour."""
    out = []
    hour_key = traffic["ts"].dt.floor("h")
    for _, batch in traffic[traffic["consent_ads"]].groupby(hour_key[traffic["consent_ads"]], sort=True):
        placed = []
        for position, request in zip(batch.index, _requests(policy, batch), strict=True):
            for ad in engine.decide(request).ads:
                placed.append((position, ad))
        if not placed:
            continue
        out.append(_outcomes(world, engine, policy, traffic, placed, rng))
    columns = ["policy", "request", "ts", "ad_id", "campaign_id", "creative_id", "bot", "pctr", "p_click", "clicked",
               "p_convert", "converted", "charged", "value"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def _outcomes(world: object, engine: DecisionEngine, policy: SimPolicy, traffic: pd.DataFrame,
              placed: list, rng: np.random.Generator) -> pd.DataFrame:
    positions = np.array([p for p, _ in placed])
    ads = [a for _, a in placed]
    req = traffic.loc[positions]
    ad_ids = np.array([a.ad_id for a in ads], dtype=object)
    texts = np.array([a.text or "" for a in ads], dtype=object)
    users = req["user_id"].to_numpy(dtype=object)
    p_click = world.p_click(users, ad_ids, creative_texts=texts, hour=req["hour"].to_numpy(),  # type: ignore[attr-defined]
                            device=req["device"].to_numpy(dtype=object), slot=req["slot"].to_numpy(dtype=object))
    p_conv = world.p_convert(users, ad_ids, creative_texts=texts, device=req["device"].to_numpy(dtype=object))  # type: ignore[attr-defined]
    clicked = rng.random(len(ads)) < p_click
    converted = clicked & (rng.random(len(ads)) < p_conv)
    value = _ad_value(world, ad_ids)
    charged = np.zeros(len(ads))
    for i, (ad, ts) in enumerate(zip(ads, req["ts"], strict=True)):
        now = ts.timestamp() + 1.0
        engine.record(AdEvent(ad.token, "impression", ts=now))
        if clicked[i]:
            charged[i] = engine.record(AdEvent(ad.token, "click", ts=now + 5)).charged
        if converted[i]:
            engine.record(AdEvent(ad.token, "conversion", ts=now + 60, value=float(value[i])))
    return pd.DataFrame({
        "policy": policy.name, "request": positions, "ts": req["ts"].to_numpy(), "ad_id": ad_ids,
        "campaign_id": [a.campaign_id for a in ads], "creative_id": [a.creative_id for a in ads],
        "bot": world.population.is_bot[world.user_index(users)],  # type: ignore[attr-defined]
        "pctr": [a.pctr for a in ads], "p_click": p_click, "clicked": clicked, "p_convert": p_conv,
        "converted": converted,
        "charged": charged, "value": np.where(converted, value, 0.0),
    })


def _ad_value(world: object, ad_ids: np.ndarray) -> np.ndarray:
    """Order value of a conversion: the list price of the ad's product."""
    rows = world.ad_index(ad_ids)  # type: ignore[attr-defined]
    return np.asarray(world.catalog.price, dtype=np.float64)[world.market.ad_product[rows]]  # type: ignore[attr-defined]


def summarise(impressions: pd.DataFrame, n_requests: int, baseline: str, n_boot: int = 500,
              seed: int = 0) -> pd.DataFrame:
    """The table :meth:`SimResult.summary` documents."""
    impressions = impressions.assign(p_conv_click=impressions["p_click"] * impressions["p_convert"])
    sums = impressions.groupby(["policy", "request"])[["p_click", "p_conv_click", "clicked", "converted", "value",
                                                        "charged"]].sum()
    sums = sums.join(impressions.groupby(["policy", "request"]).size().rename("impressions")).reset_index()
    policies = list(dict.fromkeys(impressions["policy"]))
    grid = {p: sums[sums["policy"] == p].set_index("request").reindex(range(n_requests), fill_value=0)
            for p in policies}
    draws = np.random.default_rng(seed).integers(0, n_requests, size=(n_boot, n_requests))
    # true CTR = expected clicks / impressions; true CVR = expected conversions / expected clicks
    ratios = {"ctr": ("p_click", "impressions"), "cvr": ("p_conv_click", "p_click")}

    def rate(frame: pd.DataFrame, metric: str, idx: np.ndarray | None = None) -> np.ndarray:
        num, den = (frame[c].to_numpy(dtype=np.float64) for c in ratios[metric])
        if idx is None:
            return np.array(num.sum() / max(den.sum(), 1e-12))
        return num[idx].sum(axis=1) / np.maximum(den[idx].sum(axis=1), 1e-12)

    base = grid.get(baseline)
    rows = []
    for name in policies:
        g = grid[name]
        imps, clicks, conv = int(g["impressions"].sum()), int(g["clicked"].sum()), int(g["converted"].sum())
        spend, revenue = float(g["charged"].sum()), float(g["value"].sum())
        row: dict[str, object] = {
            "policy": name, "impressions": imps, "clicks": clicks, "conversions": conv,
            "ctr": clicks / imps if imps else float("nan"), "true_ctr": float(rate(g, "ctr")),
            "cvr": conv / clicks if clicks else float("nan"), "true_cvr": float(rate(g, "cvr")),
            "spend": spend, "revenue": revenue, "roi": revenue / spend if spend else float("nan")}
        for metric in ratios if base is not None else ():
            boot = rate(g, metric, draws) / np.maximum(rate(base, metric, draws), 1e-12) - 1.0
            row[f"{metric}_lift"] = float(rate(g, metric) / max(float(rate(base, metric)), 1e-12) - 1.0)
            row[f"{metric}_lift_lo"], row[f"{metric}_lift_hi"] = (float(np.quantile(boot, q)) for q in (0.025, 0.975))
        rows.append(row)
    return pd.DataFrame(rows)
