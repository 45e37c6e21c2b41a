"""The read-only snapshot the engine decides on: campaigns, ads, creatives and users as columnar numpy arrays.

Built once from the store (or from frames, for tests and simulation) and never mutated; the engine holds one
reference and a refresh swaps in a new snapshot atomically. Everything a decision needs per candidate is a
precomputed array lookup, so the hot path never touches a pydantic object.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from adpilot.deliver.base import Encoder, Scorer
from adpilot.deliver.retrieval import AdIndex, IndexKind
from adpilot.deliver.scorer import as_batch_scorer
from adpilot.deliver.user_table import UserTable, user_table
from adpilot.errors import UserError
from adpilot.schema import Ad, BidStrategy, Campaign, Creative, Status
from adpilot.understand.vectors import unit_rows

STRATEGIES = (BidStrategy.manual_cpc, BidStrategy.target_cpa, BidStrategy.max_clicks)
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class CategoryRule:
    """A campaign allow-list over one request attribute (geo, device); an empty list allows everyone."""

    allowed_unset: np.ndarray  # (n_campaigns,) bool: the campaign does not restrict this attribute
    allowed: dict[str, np.ndarray]  # lower-cased value -> (n_campaigns,) bool: unrestricted or lists the value

    @classmethod
    def build(cls, lists: Sequence[Sequence[str]]) -> CategoryRule:
        unset = np.asarray([len(v) == 0 for v in lists], dtype=bool)
        allowed: dict[str, np.ndarray] = {}
        for row, values in enumerate(lists):
            for value in values:
                allowed.setdefault(value.strip().lower(), unset.copy())[row] = True
        return cls(unset, allowed)

    def allows(self, value: str | None, rows: np.ndarray) -> np.ndarray:
        """Which campaign ``rows`` accept a request with this ``value`` (unknown value: unrestricted only)."""
        mask = self.allowed.get(value.strip().lower(), self.allowed_unset) if value else self.allowed_unset
        return mask[rows]


def _csr(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr, order): rows of group g are ``order[ptr[g]:ptr[g+1]]``."""
    order = np.argsort(groups, kind="stable")
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(groups, minlength=n_groups), out=ptr[1:])
    return ptr, order


@dataclass(frozen=True)
class CampaignTable:
    """Campaigns as columns (row = campaign index); ``0`` caps and ``nan`` target CPA mean "none"."""

    ids: np.ndarray
    index: dict[str, int]
    total_budget: np.ndarray
    daily_budget: np.ndarray
    start: np.ndarray  # epoch seconds, -inf when open
    end: np.ndarray  # epoch seconds, +inf when open
    tz_row: np.ndarray  # index into timezones
    timezones: tuple[ZoneInfo, ...]
    strategy: np.ndarray  # index into STRATEGIES
    max_cpc: np.ndarray
    target_cpa: np.ndarray  # 0 unless the strategy is target CPA
    cap_daily: np.ndarray
    cap_lifetime: np.ndarray
    hours_mask: np.ndarray  # bit h set = may serve at local hour h
    geo: CategoryRule
    device: CategoryRule
    exclude_purchased: np.ndarray
    has_audience: np.ndarray  # segments, interests or look-alike: the user must match one of them
    segment_members: dict[str, np.ndarray]  # segment key -> campaign rows
    interest_vectors: np.ndarray  # (n_words, d) distinct interest words, encoded
    interest_pairs: tuple[np.ndarray, np.ndarray, np.ndarray]  # (word row, campaign row, threshold)
    lookalike: tuple[np.ndarray, np.ndarray, np.ndarray]  # (campaign rows, centroids (m, d), thresholds)
    seed_members: dict[int, np.ndarray]  # user row -> campaigns that named the user as a look-alike seed
    negative_keywords: tuple[tuple[str, np.ndarray], ...]  # (keyword, campaign rows)
    domain: np.ndarray  # object: the advertiser's domain as stored, or None
    domain_members: dict[str, np.ndarray]  # lower-cased advertiser domain -> campaign rows (OpenRTB ``badv``)
    ad_ptr: np.ndarray  # ads of campaign c: AdTable rows ad_order[ad_ptr[c]:ad_ptr[c+1]]
    ad_order: np.ndarray
    has_budget: np.ndarray = field(init=False)  # both budgets positive
    capped: np.ndarray = field(init=False)  # has a daily or a lifetime frequency cap
    shaded: np.ndarray = field(init=False)  # max clicks: paced by shading its bid, never throttled
    any_schedule: bool = field(init=False)  # some campaign has a start or an end
    any_hours: bool = field(init=False)  # some campaign serves only at some hours
    any_audience: bool = field(init=False)  # some campaign has an audience

    def __post_init__(self) -> None:
        """Flags the admission step reads for every ranked campaign of every request, and whether a targeting
        filter can remove anything at all (if not, requests skip it): derived once here."""
        object.__setattr__(self, "has_budget", (self.total_budget > 0) & (self.daily_budget > 0))
        object.__setattr__(self, "capped", (self.cap_daily > 0) | (self.cap_lifetime > 0))
        object.__setattr__(self, "shaded", self.strategy == STRATEGIES.index(BidStrategy.max_clicks))
        object.__setattr__(self, "any_schedule", bool(np.isfinite(self.start).any() or np.isfinite(self.end).any()))
        object.__setattr__(self, "any_hours", bool((self.hours_mask != (1 << 24) - 1).any()))
        object.__setattr__(self, "any_audience", bool(self.has_audience.any()))


@dataclass(frozen=True)
class AdTable:
    """Live ads as columns, with their creatives in CSR form (creatives of ad a: rows cr_ptr[a]:cr_ptr[a+1])."""

    ids: np.ndarray
    index: dict[str, int]
    campaign: np.ndarray  # campaign row
    product_ids: np.ndarray
    product_row: np.ndarray  # row in the snapshot's product space
    vectors: np.ndarray  # (n, d) float32 unit rows (zero when the product has no vector)
    prior_ctr: np.ndarray
    prior_cvr: np.ndarray
    cr_ptr: np.ndarray
    creative_ids: np.ndarray
    creative_text: np.ndarray
    creative_slot: np.ndarray  # object: slot or None (any slot)
    creative_prior: np.ndarray  # predicted CTR written by the create room, nan when absent
    slot_ok: dict[str, np.ndarray]  # slot -> (n_ads,) bool: has a creative usable there
    any_slot_ok: np.ndarray  # (n_ads,) bool: has a slot-less creative, or no creative at all
    category_members: dict[str, np.ndarray]  # product category (any level of its path) -> ad rows (``bcat``)


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision reads. Build with :meth:`from_frames` or :meth:`from_store`; never mutate."""

    campaigns: CampaignTable
    ads: AdTable
    users: UserTable
    product_ids: np.ndarray  # product row -> id
    product_index: dict[str, int]
    page_vectors: np.ndarray  # (n_products, d): product vectors, for pages that are product ids
    index: AdIndex
    scorer: Scorer
    encoder: Encoder | None
    slots: frozenset[str]  # known slots; empty = any slot accepted
    fallback: np.ndarray  # ad rows by prior value, for requests with no vector at all
    built_at: float = field(default_factory=time.time)

    @property
    def dim(self) -> int:
        return int(self.ads.vectors.shape[1])

    @classmethod
    def from_frames(
        cls, *, campaigns: pd.DataFrame | Sequence[Campaign], ads: pd.DataFrame | Sequence[Ad],
        product_vectors: tuple[Sequence[str], np.ndarray], scorer: Scorer,
        creatives: pd.DataFrame | Sequence[Creative] | None = None,
        profiles: pa.Table | pd.DataFrame | None = None, users: pa.Table | pd.DataFrame | None = None,
        segments: pd.DataFrame | None = None, ad_stats: pd.DataFrame | None = None,
        encoder: Encoder | None = None, slots: Sequence[str] | None = None, index_kind: IndexKind = "auto",
        user_vector_dtype: type = np.float32, advertisers: pd.DataFrame | None = None,
        products: pd.DataFrame | None = None,
    ) -> Snapshot:
        """Build from frames holding the store tables' columns (or lists of schema records).

        ``product_vectors`` is ``(product_ids, matrix (n, d))``; ``profiles`` has the ``profiles`` table columns
        (``user_id``, ``interest_vector``, ``segment_id``, ``purchased_items``, ``recent_items``); ``users``
        supplies consent flags; ``ad_stats`` has ``ad_id, impressions, clicks, conversions`` for the priors.
        ``advertisers`` (``advertiser_id``, ``domain``) and ``products`` (``product_id``, ``category``) feed the
        requests' block lists (see :mod:`adpilot.deliver.targeting`). Only active ads of active campaigns are
        kept (start/end dates are checked per request, on the request's clock); campaigns, ads and creatives are
        kept in id order, whatever order they come in. ``slots`` lists the known ad slots (default: see
        :func:`_known_slots`; empty = any slot).
        """
        product_ids = np.asarray(list(product_vectors[0]), dtype=object)
        matrix = unit_rows(np.asarray(product_vectors[1], dtype=np.float32))
        if matrix.ndim != 2 or len(matrix) != len(product_ids):
            raise UserError(f"`product_vectors` must pair {len(product_ids)} ids with as many rows, "
                            f"got shape {matrix.shape}")
        dim = matrix.shape[1]
        camp_records = _campaign_records(campaigns)
        ads_df = _in_id_order(_frame(ads, Ad), "ad_id")
        # in id order, as _in_id_order says why; start/end dates are checked per request (sim clocks)
        live = sorted((c for c in camp_records if c.status == Status.active), key=lambda c: c.campaign_id)
        camp_index = {c.campaign_id: i for i, c in enumerate(live)}
        ads_df = ads_df[(ads_df["status"].fillna("active") == "active") & ads_df["campaign_id"].isin(camp_index)]
        ads_df = ads_df.drop_duplicates("ad_id").reset_index(drop=True)

        product_index = {p: i for i, p in enumerate(product_ids)}
        extra = [p for p in pd.unique(ads_df["product_id"]) if p not in product_index]
        for p in extra:
            product_index[p] = len(product_index)
        page_vectors = np.vstack([matrix, np.zeros((len(extra), dim), np.float32)]) if extra else matrix
        users_t = user_table(profiles, users, product_index, dim, user_vector_dtype)
        seg_keys = _segment_aliases(segments)
        camp_t = _campaign_table(live, users_t, seg_keys, encoder, dim, ads_df, camp_index,
                                 _reference_vectors(users_t, matrix), _domains(advertisers))
        ad_t = _ad_table(ads_df, camp_index, product_index, page_vectors, creatives, ad_stats,
                         _categories(products))
        value = np.nan_to_num(ad_t.prior_ctr, nan=0.0) * camp_t.max_cpc[ad_t.campaign]
        return cls(
            campaigns=camp_t, ads=ad_t, users=users_t, product_ids=np.asarray(list(product_index), dtype=object),
            product_index=product_index, page_vectors=page_vectors,
            index=AdIndex(ad_t.vectors, kind=index_kind), scorer=as_batch_scorer(scorer),
            encoder=encoder,
            slots=_known_slots(slots, ad_t),
            fallback=np.argsort(-value, kind="stable")[:1000],
        )

    @classmethod
    def from_store(cls, store: Any, scorer: Scorer, encoder: Encoder | None = None, *,
                   encoder_name: str | None = None, slots: Sequence[str] | None = None,
                   index_kind: IndexKind = "auto") -> Snapshot:
        """Read campaigns, ads, creatives, product vectors, profiles, users, segments and ad event counts.

        Tables written by other rooms (``product_vectors``, ``profiles``, ``segments``) may be absent or empty:
        the snapshot then has no user profiles (every request is contextual) or no segments.
        """
        con = store.con
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        name = encoder_name or (encoder.name if encoder is not None else None)
        if "product_vectors" not in tables:
            raise UserError("the store has no product_vectors table: run the understand room's encoding first")
        names = [r[0] for r in con.execute("SELECT DISTINCT encoder FROM product_vectors").fetchall()]
        if name is None and len(names) == 1:
            name = names[0]
        if name not in names:
            raise UserError(f"the store has no product vectors for encoder {name!r} (it has {names})")
        pv = con.sql("SELECT product_id, vector FROM product_vectors WHERE encoder = $1", params=[name]).to_arrow_table()
        pv_ids = pv.column("product_id").to_pylist()
        vec = pv.column("vector").combine_chunks()
        flat = pc.list_flatten(vec).to_numpy(zero_copy_only=False).astype(np.float32)
        matrix = flat.reshape(len(pv_ids), -1) if pv_ids else np.zeros((0, encoder.dim if encoder else 0))

        def table(sql: str, needed: str) -> Any:
            return con.sql(sql).to_arrow_table() if needed in tables else None

        ad_stats = table("""SELECT ad_id, count(*) FILTER (type = 'ad_impression') AS impressions,
                                   count(*) FILTER (type = 'ad_click') AS clicks,
                                   count(*) FILTER (type = 'conversion') AS conversions
                            FROM events WHERE ad_id IS NOT NULL GROUP BY ad_id""", "events")
        return cls.from_frames(
            campaigns=con.execute("SELECT * FROM campaigns").df(), ads=con.execute("SELECT * FROM ads").df(),
            creatives=con.execute("SELECT * FROM creatives").df(), product_vectors=(pv_ids, matrix),
            profiles=table("SELECT * FROM profiles", "profiles"), users=table("SELECT * FROM users", "users"),
            segments=table("SELECT * FROM segments", "segments"),
            advertisers=con.execute("SELECT advertiser_id, domain FROM advertisers").df(),
            products=con.execute("SELECT DISTINCT p.product_id, p.category FROM products p JOIN ads a "
                                 "USING (product_id) WHERE len(p.category) > 0").df(),
            ad_stats=None if ad_stats is None else ad_stats.to_pandas(), scorer=scorer, encoder=encoder,
            slots=slots, index_kind=index_kind,
        )


def _frame(data: Any, record: type[BaseModel]) -> pd.DataFrame:
    """A DataFrame with the record's columns from a DataFrame, an Arrow table or a list of records."""
    if isinstance(data, pd.DataFrame):
        df = data.copy()
    elif isinstance(data, pa.Table):
        df = data.to_pandas()
    else:
        df = pd.DataFrame([r.model_dump(mode="json") for r in data], columns=list(record.model_fields))
    for name in record.model_fields:
        if name not in df.columns:
            df[name] = None
    return df


def _in_id_order(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """``frame`` sorted by its ``key`` column. Snapshot rows are the order in which the engine breaks ties (ANN
    neighbours, rule candidates, equal eCPMs, creative draws), and a store returns rows in no set order: sorted, the
    same tables give the same decisions. Stable, so that of duplicate ids the first given still comes first."""
    return frame.sort_values(key, kind="stable")


def _campaign_records(campaigns: Any) -> list[Campaign]:
    """Validated campaigns; a store row with a JSON ``targeting`` column is parsed, a bad row names its id."""
    if not isinstance(campaigns, pd.DataFrame):
        return list(campaigns)
    records = []
    for row in campaigns.to_dict("records"):
        data = {k: v for k, v in row.items() if k in Campaign.model_fields and not _missing(v)}
        if isinstance(data.get("targeting"), str):
            data["targeting"] = json.loads(data["targeting"])
        try:
            records.append(Campaign.model_validate(data))
        except ValueError as error:
            raise UserError(f"campaign {row.get('campaign_id')!r} is invalid: {error}") from error
    return records


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT


def _segment_aliases(segments: Any) -> dict[str, str]:
    """Targeting may name a segment by id or by its description; both map to the id's string key."""
    if segments is None:
        return {}
    df = segments.to_pandas() if isinstance(segments, pa.Table) else segments
    aliases = {str(s): str(s) for s in df["segment_id"]}
    if "description" in df.columns:
        aliases.update({str(d): str(s) for s, d in zip(df["segment_id"], df["description"], strict=True) if d})
    return aliases


def _timezone(name: str, campaign_id: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:  # "Asia" is a directory
        raise UserError(f"campaign {campaign_id!r} has an unknown `timezone` {name!r}") from error


def _known_slots(slots: Sequence[str] | None, ads: AdTable) -> frozenset[str]:
    """The slots a request may name: as given, else those named by creatives — or any (empty set) while some ad
    has a creative usable in every slot."""
    if slots is not None:
        return frozenset(slots)
    return frozenset() if ads.any_slot_ok.any() else frozenset(ads.slot_ok)


def reach_thresholds(probes: np.ndarray, reference: np.ndarray, reach: np.ndarray,
                     explicit: np.ndarray) -> np.ndarray:
    """Cosine thresholds, shape (m,): the explicit one where given, else the ``1 - reach`` quantile of each probe's
    similarity to ``reference`` (profiled users, or product vectors when there are no profiles), so that a campaign
    reaches about ``reach`` of them whatever the encoder's cosine scale.

    >>> ref = np.eye(4, dtype=np.float32)
    >>> reach_thresholds(ref[:1], ref, np.array([0.25]), np.array([np.nan])).round(2).tolist()
    [0.25]
    """
    out = np.asarray(explicit, dtype=np.float64).copy()
    todo = np.isnan(out)
    if todo.any() and len(reference):
        sims = probes[todo] @ reference.T
        out[todo] = [np.quantile(row, 1.0 - r) for row, r in zip(sims, reach[todo], strict=True)]
    return np.where(np.isnan(out), np.inf, out)


def _reference_vectors(users: UserTable, page_vectors: np.ndarray, limit: int = 5000) -> np.ndarray:
    """A seeded sample of the profiled users' interest vectors (product vectors when nobody has one)."""
    pool = users.vectors[users.has_vector] if users.has_vector.any() else page_vectors
    if len(pool) > limit:
        pool = pool[np.random.default_rng(0).choice(len(pool), limit, replace=False)]
    return np.asarray(pool, dtype=np.float32)


def _domains(advertisers: pd.DataFrame | None) -> dict[str, str]:
    """Advertiser id -> its domain (advertisers without one are left out)."""
    if advertisers is None or not len(advertisers):
        return {}
    return {str(a): str(d) for a, d in zip(advertisers["advertiser_id"], advertisers["domain"], strict=True)
            if isinstance(d, str) and d.strip()}


def _categories(products: pd.DataFrame | None) -> dict[str, list[str]]:
    """Product id -> the category path stored with it (``Product.category``, most general first)."""
    if products is None or not len(products):
        return {}
    return {str(p): [str(c) for c in cats] for p, cats in zip(products["product_id"], products["category"],
                                                              strict=True) if cats is not None and len(cats)}


def _groups(pairs: Sequence[tuple[str, int]]) -> dict[str, np.ndarray]:
    """``(key, row)`` pairs -> key -> sorted unique rows."""
    out: dict[str, list[int]] = {}
    for key, row in pairs:
        out.setdefault(key, []).append(row)
    return {k: np.unique(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


def _campaign_table(live: list[Campaign], users: UserTable, seg_keys: dict[str, str], encoder: Encoder | None,
                    dim: int, ads_df: pd.DataFrame, camp_index: dict[str, int],
                    reference: np.ndarray, domains: dict[str, str]) -> CampaignTable:
    n = len(live)
    tz_names = sorted({c.timezone for c in live})
    tzs = tuple(_timezone(z, next(c.campaign_id for c in live if c.timezone == z)) for z in tz_names)
    tz_row = {z: i for i, z in enumerate(tz_names)}
    segment_members: dict[str, list[int]] = {}
    words: dict[str, int] = {}
    pairs: list[tuple[int, int, float, float]] = []
    la_rows, la_centroids, la_thresholds, la_reach = [], [], [], []
    seeds: dict[int, list[int]] = {}
    negatives: dict[str, list[int]] = {}
    for row, c in enumerate(live):
        t = c.targeting
        for s in t.segments:
            segment_members.setdefault(seg_keys.get(s, s), []).append(row)
        for w in t.interests:
            threshold = np.nan if t.interest_threshold is None else t.interest_threshold
            pairs.append((words.setdefault(w.strip(), len(words)), row, threshold, t.interest_reach))
        seed_rows = [users.index[u] for u in t.lookalike_seed if u in users.index]
        for u in seed_rows:
            seeds.setdefault(u, []).append(row)
        with_vec = [u for u in seed_rows if users.has_vector[u]]
        if with_vec:
            centroid = users.vectors[with_vec].astype(np.float32).mean(axis=0)
            la_rows.append(row)
            la_centroids.append(centroid / max(float(np.linalg.norm(centroid)), 1e-12))
            la_thresholds.append(np.nan if t.interest_threshold is None else t.interest_threshold)
            la_reach.append(t.interest_reach)
        for k in t.negative_keywords:
            if k.strip():
                negatives.setdefault(k.strip().lower(), []).append(row)
    if words and encoder is None:
        raise UserError("campaigns target interests in words, so the snapshot needs an `encoder`")
    interest_vectors = (np.asarray(encoder.encode(list(words), kind="query"), dtype=np.float32)
                        if words and encoder is not None else np.zeros((0, dim), np.float32))
    if interest_vectors.shape[1] != dim:
        raise UserError(f"the `encoder` makes {interest_vectors.shape[1]}-d vectors, the ads' vectors are {dim}-d")
    pair_arr = np.asarray(pairs, dtype=np.float64).reshape(-1, 4)
    word_rows = pair_arr[:, 0].astype(np.int64)
    pair_thresholds = reach_thresholds(interest_vectors[word_rows], reference, pair_arr[:, 3], pair_arr[:, 2])
    la_centroid_arr = np.asarray(la_centroids, np.float32).reshape(len(la_rows), dim)
    la_threshold_arr = reach_thresholds(la_centroid_arr, reference, np.asarray(la_reach, np.float64),
                                        np.asarray(la_thresholds, np.float64))
    hours = [sum(1 << h for h in c.targeting.hours) if c.targeting.hours else (1 << 24) - 1 for c in live]
    ad_campaign = ads_df["campaign_id"].map(camp_index).to_numpy(dtype=np.int64)
    ad_ptr, ad_order = _csr(ad_campaign, n)

    def arr(values: list[Any], dtype: Any) -> np.ndarray:
        return np.asarray(values, dtype=dtype)

    return CampaignTable(
        ids=arr([c.campaign_id for c in live], object), index=dict(camp_index),
        total_budget=arr([c.total_budget for c in live], np.float64),
        daily_budget=arr([c.daily_budget for c in live], np.float64),
        start=arr([c.start.timestamp() if c.start else -np.inf for c in live], np.float64),
        end=arr([c.end.timestamp() if c.end else np.inf for c in live], np.float64),
        tz_row=arr([tz_row[c.timezone] for c in live], np.int64), timezones=tzs,
        strategy=arr([STRATEGIES.index(c.bid_strategy) for c in live], np.int64),
        max_cpc=arr([c.max_cpc for c in live], np.float64),
        target_cpa=arr([_target_cpa(c) for c in live], np.float64),
        cap_daily=arr([c.freq_cap_daily or 0 for c in live], np.int64),
        cap_lifetime=arr([c.freq_cap_lifetime or 0 for c in live], np.int64),
        hours_mask=arr(hours, np.int64),
        geo=CategoryRule.build([c.targeting.geo for c in live]),
        device=CategoryRule.build([c.targeting.device for c in live]),
        exclude_purchased=arr([c.targeting.exclude_purchased for c in live], bool),
        has_audience=arr([bool(c.targeting.segments or c.targeting.interests or c.targeting.lookalike_seed)
                          for c in live], bool),
        segment_members={k: arr(v, np.int64) for k, v in segment_members.items()},
        interest_vectors=interest_vectors,
        interest_pairs=(word_rows, pair_arr[:, 1].astype(np.int64), pair_thresholds),
        lookalike=(arr(la_rows, np.int64), la_centroid_arr, la_threshold_arr),
        seed_members={u: arr(v, np.int64) for u, v in seeds.items()},
        negative_keywords=tuple((k, arr(v, np.int64)) for k, v in negatives.items()),
        domain=arr([domains.get(c.advertiser_id) for c in live], object),
        domain_members=_groups([(domains[c.advertiser_id].strip().lower(), row) for row, c in enumerate(live)
                                if c.advertiser_id in domains]),
        ad_ptr=ad_ptr, ad_order=ad_order,
    )


def _target_cpa(campaign: Campaign) -> float:
    if campaign.bid_strategy != BidStrategy.target_cpa:
        return 0.0
    if not campaign.target_cpa:
        raise UserError(f"campaign {campaign.campaign_id!r} bids by target CPA, so `target_cpa` must be > 0")
    return float(campaign.target_cpa)


def _smoothed(successes: np.ndarray, trials: np.ndarray, strength: float = 10.0) -> np.ndarray:
    """Empirical-Bayes rate: shrink each ad's rate toward the pooled rate with ``strength`` pseudo-trials."""
    pooled = successes.sum() / trials.sum() if trials.sum() > 0 else np.nan
    if not np.isfinite(pooled):
        return np.full(len(trials), np.nan)
    return (successes + strength * pooled) / (trials + strength)


def _ad_table(ads_df: pd.DataFrame, camp_index: dict[str, int], product_index: dict[str, int],
              product_vectors: np.ndarray, creatives: Any, ad_stats: pd.DataFrame | None,
              categories: dict[str, list[str]]) -> AdTable:
    n = len(ads_df)
    ad_ids = ads_df["ad_id"].to_numpy(dtype=object)
    index = {a: i for i, a in enumerate(ad_ids)}
    product_row = ads_df["product_id"].map(product_index).to_numpy(dtype=np.int64)
    imp, clk, conv = np.zeros(n), np.zeros(n), np.zeros(n)
    if ad_stats is not None and len(ad_stats):
        stats = ad_stats.set_index("ad_id").reindex(ad_ids).fillna(0)
        imp, clk = stats["impressions"].to_numpy(float), stats["clicks"].to_numpy(float)
        conv = stats["conversions"].to_numpy(float) if "conversions" in stats else np.zeros(n)
    prior_ctr, prior_cvr = _smoothed(clk, imp), _smoothed(conv, clk)

    cr = _in_id_order(_frame(creatives if creatives is not None else [], Creative), "creative_id")
    cr = cr[(cr["status"].fillna("active") == "active") & cr["ad_id"].isin(index)].drop_duplicates("creative_id")
    cr_ad = cr["ad_id"].map(index).to_numpy(dtype=np.int64)
    cr_ptr, order = _csr(cr_ad, n)
    cr = cr.iloc[order]
    cr_slot = cr["slot"].to_numpy(dtype=object)
    has_creative = np.diff(cr_ptr) > 0
    cr_ad_sorted = cr_ad[order]
    slotless = np.zeros(n, dtype=bool)
    slotless[cr_ad_sorted[pd.isna(cr_slot)]] = True
    slot_ok = {}
    for slot in pd.unique(cr_slot[~pd.isna(cr_slot)]):
        ok = slotless.copy()
        ok[cr_ad_sorted[cr_slot == slot]] = True
        slot_ok[str(slot)] = ok
    scores = [s if isinstance(s, dict) else json.loads(s) if isinstance(s, str) else {} for s in cr["scores"]]
    return AdTable(
        ids=ad_ids, index=index, campaign=ads_df["campaign_id"].map(camp_index).to_numpy(dtype=np.int64),
        product_ids=ads_df["product_id"].to_numpy(dtype=object), product_row=product_row,
        vectors=np.ascontiguousarray(product_vectors[product_row]), prior_ctr=prior_ctr, prior_cvr=prior_cvr,
        cr_ptr=cr_ptr, creative_ids=cr["creative_id"].to_numpy(dtype=object),
        creative_text=cr["text"].to_numpy(dtype=object), creative_slot=np.where(pd.isna(cr_slot), None, cr_slot),  # type: ignore[call-overload]
        creative_prior=np.asarray([float(s.get("pctr", np.nan)) for s in scores], dtype=np.float64),
        slot_ok=slot_ok, any_slot_ok=slotless | ~has_creative,
        category_members=_groups([(c, row) for row, p in enumerate(ads_df["product_id"])
                                  for c in categories.get(p, ())]),
    )
