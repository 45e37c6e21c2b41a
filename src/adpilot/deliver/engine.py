"""The decision path — the only one: the HTTP server, the simulator and the replay all call
:meth:`DecisionEngine.decide`.

request -> user and context vectors -> retrieval (ANN on the user's interest vector and on the page/query
vector, merged with rule-targeted ads) -> targeting filters, the request's block lists among them -> budget and
frequency -> pacing -> scoring (pCTR, pCVR) -> bids by strategy -> auction (one ad per campaign, reserve, second or
first price) -> budget reserved and frequency counted atomically per winner -> creative by Thompson sampling ->
signed tokens.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from adpilot.config import Settings, get_settings
from adpilot.deliver.auction import PriceRule, best_per_group, bids_per_click, prices, rank
from adpilot.deliver.bandits import ThompsonCreatives
from adpilot.deliver.base import CandidateBatch, Counters, CountersUnavailable, Placement, clip
from adpilot.deliver.counters import InProcessCounters
from adpilot.deliver.feedback import AdEvent, FeedbackOutcome, FeedbackProcessor
from adpilot.deliver.pacing import PIPacer
from adpilot.deliver.retrieval import QueryVectorCache
from adpilot.deliver.snapshot import Snapshot
from adpilot.deliver.targeting import FILTERS, LocalClock, audience_matches, targeting_filters
from adpilot.deliver.tokens import TokenClaims, TokenSigner
from adpilot.errors import check_scalar
from adpilot.schema import AdRequest, Decision, PlacedAd

SOURCES = ("ann", "rule", "fallback")


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the decision path. ``reserve_cpm`` and a request's ``floor_price`` are per 1,000 impressions;
    ``min_cpc`` is the smallest charge per click (one fen)."""

    n_candidates: int = 200
    oversample: float = 1.5
    rule_share: float = 0.5
    price_rule: PriceRule = "second"
    reserve_cpm: float = 0.0
    min_cpc: float = 0.01
    token_ttl_s: float = 3600.0
    conversion_window_s: float = 7 * 86400.0
    bandit_prior_strength: float = 20.0
    query_cache_size: int = 10_000
    explain_limit: int = 20
    pacing: bool = True
    skip_filters: tuple[str, ...] = ()  # targeting filters not applied, e.g. for an untargeted baseline

    def __post_init__(self) -> None:
        check_scalar(self.n_candidates, "n_candidates", ge=1)
        check_scalar(self.oversample, "oversample", ge=1)
        check_scalar(self.rule_share, "rule_share", ge=0, le=1)
        check_scalar(self.reserve_cpm, "reserve_cpm", ge=0)
        check_scalar(self.min_cpc, "min_cpc", ge=0)
        check_scalar(self.token_ttl_s, "token_ttl_s", gt=0)
        check_scalar(self.conversion_window_s, "conversion_window_s", ge=0)
        unknown = sorted(set(self.skip_filters) - set(FILTERS))
        if unknown:
            raise ValueError(f"`skip_filters` must name filters among {FILTERS}, got {unknown}")
        if self.price_rule not in ("second", "first"):
            raise ValueError(f"`price_rule` must be 'second' or 'first', got {self.price_rule!r}")


class _Trace:
    """Which candidates each stage removed, for ``explain`` and for the no-fill reason.

    Stages are recorded as they happen but counted only when asked: a decision that places an ad without
    ``explain`` never pays for the bookkeeping. A stage is ``(rows, [(reason, passes), ...])``: its checks are
    attributed in order, each row to the first check it fails; ``passes`` is a mask aligned with ``rows``, or the
    positions that passed (integers). Recorded arrays are never written to afterwards.
    """

    def __init__(self, snapshot: Snapshot, enabled: bool, limit: int) -> None:
        self.snapshot, self.enabled, self.limit = snapshot, enabled, limit
        self.info: dict[str, object] = {}
        self._stages: list[tuple[np.ndarray, list[tuple[str, np.ndarray]]]] = []

    def stage(self, rows: np.ndarray, checks: list[tuple[str, np.ndarray]]) -> None:
        """Record that ``rows`` went through ``checks`` (``passes`` masks aligned with ``rows``)."""
        self._stages.append((rows, checks))

    def kept(self, rows: np.ndarray, reason: str, positions: np.ndarray) -> None:
        """Record that only ``rows[positions]`` passed the check ``reason`` (its mask is built when counted)."""
        self._stages.append((rows, [(reason, positions)]))

    def drop(self, reason: str, rows: np.ndarray) -> None:
        """Record that every one of ``rows`` was removed for ``reason``."""
        self._stages.append((rows, [(reason, np.zeros(len(rows), dtype=bool))]))

    def removed(self) -> dict[str, tuple[int, list[str]]]:
        """reason -> (how many rows it removed, up to ``limit`` of their ad ids when enabled)."""
        out: dict[str, tuple[int, list[str]]] = {}
        for rows, checks in self._stages:
            alive = np.ones(len(rows), dtype=bool)
            for reason, passes in checks:
                if passes.dtype != bool:  # the positions that passed (``kept``)
                    positions, passes = passes, np.zeros(len(rows), dtype=bool)
                    passes[positions] = True
                gone = rows[alive & ~passes]
                alive &= passes
                if len(gone):
                    count, examples = out.get(reason, (0, []))
                    if self.enabled and len(examples) < self.limit:
                        examples = examples + self.snapshot.ads.ids[gone[: self.limit]].tolist()
                    out[reason] = (count + len(gone), examples)
        return out

    def summary(self) -> str:
        removed = sorted(self.removed().items(), key=lambda kv: -kv[1][0])
        parts = ", ".join(f"{k}: {count}" for k, (count, _) in removed)
        return f"every candidate was filtered out ({parts})" if parts else "no candidate ads"

    def explanation(self) -> dict[str, object]:
        removed = {k: {"count": count, "ads": ads[: self.limit]} for k, (count, ads) in self.removed().items()}
        return {**self.info, "removed": removed}


_BATCH_COLUMNS: dict[str, Callable[[Snapshot, np.ndarray, np.ndarray], np.ndarray]] = {
    "ad_ids": lambda s, rows, camp: s.ads.ids[rows],
    "product_ids": lambda s, rows, camp: s.ads.product_ids[rows],
    "ad_vectors": lambda s, rows, camp: np.take(s.ads.vectors, rows, axis=0),
    "prior_ctr": lambda s, rows, camp: s.ads.prior_ctr[rows],
    "prior_cvr": lambda s, rows, camp: s.ads.prior_cvr[rows],
    "campaign_ids": lambda s, rows, camp: s.campaigns.ids[camp],
}


def _batch_column(snapshot: Snapshot, rows: np.ndarray, camp: np.ndarray, user_row: int,
                  name: str) -> np.ndarray | tuple[str, ...]:
    """A gathered :class:`CandidateBatch` field of the candidates' ad ``rows`` (of campaign rows ``camp``) or of the
    user (``user_row``, -1 for none), computed only when the scorer reads it."""
    if name == "recent_items":
        if user_row < 0:
            return ()
        users = snapshot.users
        items = users.recent[users.recent_ptr[user_row]:users.recent_ptr[user_row + 1]]
        return tuple(snapshot.product_ids[items[items >= 0]].tolist())
    return _BATCH_COLUMNS[name](snapshot, rows, camp)


_ZEROS4 = np.zeros(4, np.uint64)  # shared: Philox's state setter copies it
_ZEROS4.flags.writeable = False


class _RequestStreams(threading.local):
    """One Philox generator per thread, re-keyed for each request: the very stream of ``Philox(key=key)``,
    without constructing one per request (that draws OS entropy for a seed sequence the key then ignores); and a
    scratch mask per thread, so that a request does not zero a catalogue-sized array to mark a few rows."""

    def __init__(self) -> None:
        self.bits = np.random.Philox(key=0)
        self.rng = np.random.Generator(self.bits)
        self._mask = np.zeros(0, dtype=bool)

    def mask(self, n: int) -> np.ndarray:
        """This thread's all-``False`` bool array of length ``n``: whoever sets entries clears them again."""
        if len(self._mask) != n:
            self._mask = np.zeros(n, dtype=bool)
        return self._mask

    def keyed(self, key: int) -> np.random.Generator:
        self.bits.state = {"bit_generator": "Philox",
                           "state": {"counter": _ZEROS4,
                                     "key": np.array([key & 0xFFFF_FFFF_FFFF_FFFF, key >> 64], np.uint64)},
                           "buffer": _ZEROS4, "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        return self.rng


class DecisionEngine:
    """Decides which ads to show for an :class:`AdRequest`, on one snapshot, with shared counters.

    Thread-safe: the snapshot is read-only and swapped by :meth:`refresh` in one assignment; counters make every
    budget and frequency change atomic; each request draws from its own generator seeded by
    ``(seed, request_id)``, so a decision is reproducible whatever else runs concurrently.
    """

    def __init__(self, snapshot: Snapshot, counters: Counters | None = None, settings: Settings | None = None,
                 seed: int = 0, config: EngineConfig | None = None, pacer: PIPacer | None = None) -> None:
        settings = settings if settings is not None else get_settings()
        self.config = config if config is not None else EngineConfig()
        self.seed = int(check_scalar(seed, "seed", ge=0))
        self.counters: Counters = counters if counters is not None else InProcessCounters()
        self.signer = TokenSigner(settings.token_secret)
        self.pacer = (pacer if pacer is not None else PIPacer()).reset(snapshot.campaigns.ids.tolist())
        self.bandit = ThompsonCreatives(self.config.bandit_prior_strength)
        self.feedback = FeedbackProcessor(self.counters, self.signer, self.config.conversion_window_s)
        self._queries = QueryVectorCache(snapshot.encoder, self.config.query_cache_size)
        self._snapshot = snapshot
        self._streams = _RequestStreams()
        self._clock: LocalClock | None = None  # the last request's: lends its calendar within the same second

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def refresh(self, snapshot: Snapshot) -> None:
        """Swap in a new snapshot; requests in flight finish on the one they started with."""
        self.pacer.reset(snapshot.campaigns.ids.tolist())
        if snapshot.encoder is not self._snapshot.encoder:
            self._queries = QueryVectorCache(snapshot.encoder, self.config.query_cache_size)
        self._snapshot = snapshot

    def record(self, event: AdEvent) -> FeedbackOutcome:
        """Apply one impression, click or conversion event (see :mod:`adpilot.deliver.feedback`); with the
        counters unreachable the event is rejected with that reason (the sender may retry), never half-applied
        into an overspend."""
        try:
            return self.feedback.record(event)
        except CountersUnavailable as error:
            return FeedbackOutcome(False, f"counters unavailable, retry later ({error})")

    def decide(self, request: AdRequest) -> Decision:
        """The decision for one request: placed ads with tokens, or a no-fill with the reason."""
        snapshot = self._snapshot
        now = request.ts.timestamp() if request.ts is not None else time.time()
        key = (self.seed << 32) | zlib.crc32(request.request_id.encode("utf-8"))
        rng = self._streams.keyed(key)  # per request: reproducible under concurrency
        trace = _Trace(snapshot, request.explain, self.config.explain_limit)
        reason: str | None = None
        try:
            ads, reason = self._decide(snapshot, request, now, rng, trace)
        except CountersUnavailable as error:
            ads, reason = [], f"counters unavailable, serving nothing rather than risk overspending ({error})"
        # built by this code from validated parts: constructed, not re-validated (it is on every request's path)
        return Decision.model_construct(request_id=request.request_id, ads=ads,
                                        no_fill_reason=None if ads else reason or trace.summary(),
                                        explanation=trace.explanation() if request.explain else None)

    def _vectors(self, snapshot: Snapshot, request: AdRequest,
                 user_row: int) -> tuple[bool, np.ndarray | None, np.ndarray | None, tuple[str, object]]:
        """(personalised, user vector, context vector, what the context vector is of: the key of its
        neighbours in the index's cache) of a request."""
        users = snapshot.users
        personalised = bool(request.consent_personalisation and user_row >= 0 and users.consent[user_row])
        user_vector = (users.vectors[user_row].astype(np.float32)
                       if personalised and users.has_vector[user_row] else None)
        context_vector: np.ndarray | None = None
        context: tuple[str, str | int | None] = ("", None)
        if request.query:
            context_vector, context = self._queries.get(request.query), ("text", request.query.strip())
        elif request.page:
            product = snapshot.product_index.get(request.page)
            if product is not None and snapshot.page_vectors[product].any():
                context_vector, context = snapshot.page_vectors[product], ("product", product)
            else:
                context_vector, context = self._queries.get(request.page), ("text", request.page.strip())
        return personalised, user_vector, context_vector, context

    def _retrieve(self, snapshot: Snapshot, user_vector: np.ndarray | None, context_vector: np.ndarray | None,
                  context: tuple[str, object], matched: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
        """(candidate ad rows, how many of them are rule-targeted, the source of the rest as an index into
        SOURCES): rule-targeted ads first, then ANN (or fallback). The context's neighbours come from the index's
        cache: a page or query seen before costs no search."""
        c, n = snapshot.campaigns, self.config.n_candidates
        probes = [v for v in (user_vector, context_vector) if v is not None]
        starts, stops = c.ad_ptr[matched], c.ad_ptr[matched + 1]
        lengths = stops - starts
        total = int(lengths.sum())
        rule = np.zeros(0, dtype=np.int64)
        cap = int(n * self.config.rule_share)
        if total and cap:
            offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
            rule = c.ad_order[offsets + np.arange(total)]
            if len(rule) > 4 * cap:
                rule = rng.choice(rule, 4 * cap, replace=False)
            if len(rule) > cap:
                if probes:
                    sims = np.take(snapshot.ads.vectors, rule, axis=0) @ probes[0]
                    rule = rule[np.argpartition(-sims, cap - 1)[:cap]]
                else:
                    rule = rng.choice(rule, cap, replace=False)
        want = int(n * self.config.oversample) - len(rule)
        if probes:
            k = -(-want // 2) if len(probes) == 2 else want  # with both probes, half from each
            if context_vector is None:
                lists = [snapshot.index.search(probes[0], k)]  # the user's vector, the only probe
            else:
                near_context, near_user = snapshot.index.search_cached(context, context_vector, k, user_vector)
                lists = [near_context] if near_user is None else [near_user, near_context]
            found, source = lists[0], 0
            if len(lists) == 2:  # interleaved, so that the best of each come first
                found = np.vstack(lists).T.ravel()
                _, first = np.unique(found, return_index=True)
                found = found[np.sort(first)]  # de-duplicated, retrieval order kept
            found = found[found >= 0]
        else:
            found, source = snapshot.fallback[:want], 2
        if len(rule):
            taken = self._streams.mask(len(snapshot.ads.ids))
            taken[rule] = True
            fresh = ~taken[found]
            taken[rule] = False
            found = found[fresh]
        return np.concatenate([rule, found]), len(rule), source

    def _decide(self, snapshot: Snapshot, request: AdRequest, now: float, rng: np.random.Generator,
                trace: _Trace) -> tuple[list[PlacedAd], str | None]:
        """Placed ads, and the no-fill reason when it is not the trace's summary."""
        if snapshot.slots and request.slot not in snapshot.slots:
            return [], f"unknown slot {request.slot!r}"
        users, camps, cfg = snapshot.users, snapshot.campaigns, self.config
        user_row = users.index.get(request.user_id, -1) if request.user_id else -1
        personalised, user_vector, context_vector, context = self._vectors(snapshot, request, user_row)
        matched = audience_matches(snapshot, user_row, personalised, user_vector, context_vector)
        rows, n_rule, source = self._retrieve(snapshot, user_vector, context_vector, context, matched, rng)
        if trace.enabled:
            sources = dict.fromkeys(SOURCES, 0)
            sources["rule"] += n_rule
            sources[SOURCES[source]] += len(rows) - n_rule
            trace.info.update({
                "user": {"known": user_row >= 0, "personalised": personalised,
                         "interest_vector": user_vector is not None},
                "retrieval": {"probes": [n for n, v in (("user", user_vector), ("context", context_vector))
                                         if v is not None],
                              "audience_campaigns": len(matched),
                              **sources},
            })
        clock = self._clock = LocalClock.at(camps, now, self._clock)
        masks = targeting_filters(snapshot, rows, clock, slot=request.slot, geo=request.geo,
                                  device=request.device, query=request.query, user_row=user_row,
                                  personalised=personalised, matched=matched,
                                  block_domains=request.block_domains, block_categories=request.block_categories)
        checks = [(name, ok) for name in FILTERS if (ok := masks[name]) is not None and name not in cfg.skip_filters]
        trace.stage(rows, checks)
        if checks:
            rows = rows[np.logical_and.reduce([ok for _, ok in checks])]
        rows = rows[: cfg.n_candidates]  # retrieval order: rule-targeted first, then the nearest
        if not len(rows):
            return [], None
        return self._auction(snapshot, request, now, rng, trace, clock, rows, user_row, user_vector, context_vector)

    def _auction(self, snapshot: Snapshot, request: AdRequest, now: float, rng: np.random.Generator,
                 trace: _Trace, clock: LocalClock, rows: np.ndarray, user_row: int, user_vector: np.ndarray | None,
                 context_vector: np.ndarray | None) -> tuple[list[PlacedAd], str | None]:
        """Score, bid and rank every candidate; admit campaigns down the ranking; price and place the winners."""
        ads, camps, users, cfg = snapshot.ads, snapshot.campaigns, snapshot.users, self.config
        camp = ads.campaign[rows]
        batch = CandidateBatch.lazy(  # the user's recent items only with an interest vector, as ever
            len(rows), partial(_batch_column, snapshot, rows, camp, user_row if user_vector is not None else -1),
            user_vector=user_vector, context_vector=context_vector,
            user_id=request.user_id if user_vector is not None else None, slot=request.slot,
            device=request.device, geo=request.geo, hour=int(now // 3600 % 24),
            segment=users.segment[user_row] if user_vector is not None else None)
        pctr, pcvr = (np.asarray(a, dtype=np.float64) for a in snapshot.scorer.score(batch))
        finite = np.isfinite(pctr) & np.isfinite(pcvr)
        trace.stage(rows, [("nan_score", finite)])
        if not finite.all():
            rows, camp, pctr, pcvr = rows[finite], camp[finite], pctr[finite], pcvr[finite]
        pctr, pcvr = clip(pctr, 0.0, 1.0), clip(pcvr, 0.0, 1.0)
        bid = bids_per_click(camps, camp, pcvr, self.pacer.rate_[camp] if cfg.pacing else np.ones(len(camp)))
        ecpm = 1000.0 * pctr * bid
        best = best_per_group(camp, ecpm)
        trace.kept(rows, "same_campaign_better_ad", best)
        rows, camp, pctr, pcvr, bid, ecpm = (a[best] for a in (rows, camp, pctr, pcvr, bid, ecpm))
        reserve = max(cfg.reserve_cpm, request.floor_price)
        order = rank(ecpm, reserve, rng)
        trace.kept(rows, "below_reserve", order)
        order = order[self._admit(snapshot, request, now, rng, trace, clock, rows[order], camp[order])]
        price = prices(ecpm[order], bid[order], pctr[order], reserve, cfg.price_rule, cfg.min_cpc)
        if request.explain:
            top = np.argsort(-ecpm)[: cfg.explain_limit]
            trace.info["scored"] = [
                {"ad_id": str(ads.ids[rows[i]]), "campaign_id": str(camps.ids[camp[i]]), "pctr": float(pctr[i]),
                 "pcvr": float(pcvr[i]), "bid": float(bid[i]), "ecpm": float(ecpm[i])} for i in top]
            trace.info["auction"] = {
                "rule": cfg.price_rule, "reserve_cpm": reserve,
                "admitted": [{"ad_id": str(ads.ids[rows[i]]), "ecpm": float(ecpm[i]), "price": float(p)}
                             for i, p in zip(order, price, strict=True)]}
        placed: list[PlacedAd] = []
        for i, p in zip(order, price, strict=True):
            if len(placed) == request.n_ads:
                break
            c = int(camp[i])
            ad = self._place(snapshot, request, now, rng, trace, int(rows[i]), c, float(p), float(pctr[i]),
                             float(pcvr[i]), float(ecpm[i]), clock.day[camps.tz_row[c]])
            if ad is not None:
                placed.append(ad)
        return placed, None

    def _admit(self, snapshot: Snapshot, request: AdRequest, now: float, rng: np.random.Generator,
               trace: _Trace, clock: LocalClock, rows: np.ndarray, camp: np.ndarray) -> np.ndarray:
        """Positions in the ranking (``rows``/``camp``, one per campaign, best first) that may win: budget left,
        under the frequency caps, and let through by pacing. Walks down in chunks, so the counters are read only
        for campaigns that could win: ``n_ads`` winners plus the runner-up that sets the last price."""
        camps, cfg = snapshot.campaigns, self.config
        need, chunk = request.n_ads + 1, max(2 * request.n_ads + 2, 8)
        admitted: list[int] = []
        for start in range(0, len(rows), chunk):
            if len(admitted) >= need:
                break
            r, c = rows[start:start + chunk], camp[start:start + chunk]
            tz = camps.tz_row[c]
            ids, days = camps.ids[c].tolist(), [clock.day[t] for t in tz.tolist()]
            capped = camps.capped[c].nonzero()[0].tolist() if request.user_id else []
            state = self.counters.admission_state(ids, days, now, request.user_id, capped)
            daily_budget = camps.daily_budget[c]
            remaining = np.minimum(camps.total_budget[c] - state.spent_total, daily_budget - state.spent_day)
            checks = {"zero_budget": camps.has_budget[c],
                      "budget_exhausted": remaining - state.reserved >= max(cfg.min_cpc, 1e-9)}
            if capped:  # a few campaigns: plain Python beats a dozen numpy calls
                under = np.ones(len(c), dtype=bool)
                for i, daily, life in zip(capped, state.served_today.tolist(), state.served_lifetime.tolist(),
                                          strict=True):
                    cap_d, cap_l = int(camps.cap_daily[c[i]]), int(camps.cap_lifetime[c[i]])
                    under[i] = not ((cap_d > 0 and daily >= cap_d) or (cap_l > 0 and life >= cap_l))
                checks["frequency_cap"] = under
            if cfg.pacing:
                self.pacer.update(c, state.spent_day + state.reserved, daily_budget, clock.day_fraction[tz], now)
                enters, _ = self.pacer.select(c, rng)
                checks["pacing"] = enters | camps.shaded[c]  # max-clicks is shaded, not throttled
            trace.stage(r, list(checks.items()))
            keep = np.logical_and.reduce(list(checks.values()))
            admitted.extend((start + keep.nonzero()[0]).tolist())
        return np.asarray(admitted[:need], dtype=np.int64)

    def _place(self, snapshot: Snapshot, request: AdRequest, now: float, rng: np.random.Generator,
               trace: _Trace, row: int, c: int, price: float, pctr: float, pcvr: float, ecpm: float,
               day: str) -> PlacedAd | None:
        """Reserve the price and count the exposure in one atomic step (which also reads the bandit counts of the
        ad's creatives); then choose the creative and sign the token."""
        ads, camps = snapshot.ads, snapshot.campaigns
        ad_id, campaign_id = str(ads.ids[row]), str(camps.ids[c])
        claims_id = f"{request.request_id}/{ad_id}"
        expires = now + self.config.token_ttl_s
        options = self._creative_options(snapshot, row, request.slot)
        placement = self.counters.place(
            campaign_id, day, price, float(camps.total_budget[c]), float(camps.daily_budget[c]), claims_id, expires,
            now, request.user_id, int(camps.cap_daily[c]), int(camps.cap_lifetime[c]),
            ads.creative_ids[options].tolist() if len(options) > 1 else ())
        if placement.outcome != "placed":
            # budget: spent meanwhile, or a repeated request id; frequency: another request took the last exposure
            trace.drop("reservation_refused" if placement.outcome == "budget" else "frequency_cap_mid_request",
                       np.asarray([row]))
            return None
        creative = self._creative(snapshot, options, pctr, placement, rng)
        claims = TokenClaims(request_id=request.request_id, user_id=request.user_id, ad_id=ad_id,
                             campaign_id=campaign_id,
                             creative_id=None if creative is None else str(ads.creative_ids[creative]),
                             slot=request.slot, price=price, issued_at=now, expires_at=expires)
        return PlacedAd.model_construct(  # from finite, clipped numbers computed here: not re-validated
            ad_id=ad_id, campaign_id=campaign_id, creative_id=claims.creative_id,
            text=None if creative is None else str(ads.creative_text[creative]),
            price=price, ecpm=ecpm, pctr=pctr, pcvr=pcvr, token=self.signer.sign(claims))

    @staticmethod
    def _creative_options(snapshot: Snapshot, row: int, slot: str) -> list[int]:
        """Rows of the ad's creatives usable in ``slot``."""
        ads = snapshot.ads
        start, stop = int(ads.cr_ptr[row]), int(ads.cr_ptr[row + 1])
        slots = ads.creative_slot[start:stop].tolist()  # a few per ad: plain Python beats numpy calls here
        return [start + i for i, s in enumerate(slots) if s is None or s == slot]

    def _creative(self, snapshot: Snapshot, options: list[int], pctr: float, placement: Placement,
                  rng: np.random.Generator) -> int | None:
        """Thompson sampling over the creative ``options`` (their row) on the placement's bandit counts, ``None``
        without any."""
        if len(options) <= 1:
            return options[0] if options else None
        prior = [p if math.isfinite(p) else pctr for p in snapshot.ads.creative_prior[options].tolist()]
        return options[self.bandit.select(prior, placement.impressions.tolist(), placement.clicks.tolist(), rng)]
