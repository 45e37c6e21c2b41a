r"""The world and its truth oracle: true click and conversion probabilities of any (user, ad, creative, context).

The choice model (documented here once; the behaviour generator and the oracle share these functions):

.. math::

    m_{up} = \log \mathrm{clip}(L\,\theta_{u,\mathrm{leaf}(p)}, 0.05, 20), \quad
    s_{up} = \log \mathrm{clip}(8\,\phi_{u,\mathrm{style}(p)}, 0.1, 8), \quad
    r_{up} = \log(\mathrm{price}_p / \mathrm{median}_{\mathrm{leaf}(p)})

    \mathrm{logit}\,P(\mathrm{click}) = b_c + 0.7 m + 0.35 s - 0.2 \beta_u r + 0.3 a_p + \mathrm{slot} + \mathrm{device}
        + 0.25\cos(2\pi(h - 21)/24) + q + 0.5\,\mathrm{ment}\cdot\mathrm{clip}(s, -1, 1) + 4.5\,[\mathrm{bot}],
        \qquad q = 1.2 (\mathrm{cov} - 0.5) - 0.4\,[\mathrm{bad\ length}]

    \mathrm{logit}\,P(\mathrm{conversion} \mid \mathrm{click}) = b_v + 0.6 m + 0.4 s - 0.8 \beta_u r + 0.5 a_p
        + 0.3 (\mathrm{cov} - 0.5) + 0.2\,[\mathrm{desktop}] \quad (0 \text{ for bots})

with θ the user's leaf interest, φ their style taste, β their price sensitivity, a the product's appeal, cov the
share of the product's attribute values that the creative mentions and ment whether it names the product's style
word (which helps users who like that style and hurts those who do not). :math:`b_c, b_v` are calibrated so that a
uniformly random ad shown to a random human user in random context has CTR 1.5% and post-click CVR 5%; matching ads to
interests raises both. Organic browsing uses the same m, s, r as its utility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit

from adpilot.datasets.world.catalog import Catalog, make_catalog
from adpilot.datasets.world.config import WorldConfig
from adpilot.datasets.world.market import Market, make_market
from adpilot.datasets.world.population import Population, make_population
from adpilot.datasets.world.vocab import CATEGORIES, DEVICES, LEAVES, SLOTS, STYLES
from adpilot.errors import UserError

SLOT_EFFECT = {"home_banner": -0.3, "search_top": 0.4, "item_related": 0.1, "feed": -0.1}
DEVICE_EFFECT = {"mobile": 0.1, "desktop": -0.1, "tablet": 0.0}
CTR_TARGET = 0.015
CVR_TARGET = 0.05
QUERIES_PER_TOPIC = 4

ArrayLike = np.ndarray | Sequence | str | int | float | None


def _broadcast(value: ArrayLike, n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=object if isinstance(value, str) else None)
    if arr.ndim == 0:
        return np.full(n, arr.item(), dtype=object if isinstance(arr.item(), str) else None)
    if len(arr) != n:
        raise UserError(f"`{name}` must have one value per user ({n}), got {len(arr)}")
    return arr


def _lookup(table: dict[str, float], values: np.ndarray, name: str) -> np.ndarray:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    unknown = [u for u in uniques if u not in table]
    if unknown:
        raise UserError(f"`{name}` must be one of {sorted(table)}, got {unknown[0]!r}")
    return np.array([table[u] for u in uniques])[codes]


@dataclass(frozen=True)
class CreativeTerms:
    """What a creative adds, per row: ``quality`` (user-independent click-logit term), ``mention`` (names the
    product's style word, 0/1) and ``coverage`` (share of the product's attribute values named)."""

    quality: np.ndarray
    mention: np.ndarray
    coverage: np.ndarray

    def take(self, rows: np.ndarray) -> CreativeTerms:
        return CreativeTerms(self.quality[rows], self.mention[rows], self.coverage[rows])


class World:
    """A synthetic shop: catalogue, users, advertisers, and the truth behind them.

    Build it with :meth:`generate` (from a config) or :meth:`load` (from a folder written by
    :func:`adpilot.datasets.world.write_world`); both give the same world for the same config.

    >>> w = World.generate(WorldConfig(n_users=200, n_events=0, seed=1))
    >>> p = w.p_click(["u001", "u002"], w.ad_ids[:2], hour=20, device="mobile", slot="feed")
    >>> p.shape, bool(((p > 0) & (p < 1)).all())
    ((2,), True)
    """

    def __init__(self, config: WorldConfig, catalog: Catalog, population: Population, market: Market) -> None:
        self.config = config
        self.catalog = catalog
        self.population = population
        self.market = market
        self.n_leaves = len(LEAVES)
        self.leaf_names = [leaf.zh for _, leaf in LEAVES]
        self.leaf_names_en = [leaf.en for _, leaf in LEAVES]
        self.style_names = [zh for zh, _ in STYLES]
        self.user_ids = population.ids
        self.ad_ids = market.ads.column("ad_id").combine_chunks()
        self._user_index = pd.Index(population.ids.to_numpy(zero_copy_only=False))
        self._ad_index = pd.Index(self.ad_ids.to_numpy(zero_copy_only=False))
        self._creative_index = pd.Index(market.creatives.column("creative_id").to_numpy())
        self.log_relative_price = np.log(catalog.price / catalog.leaf_median_price()[catalog.leaf])
        self.creatives = self._text_features(market.creatives.column("text").to_pylist(),
                                             market.ad_product[market.creative_ad])
        self._queries = self._query_pool()
        self._bias_click = 0.0
        self._bias_conv = 0.0
        self._calibrate(np.random.default_rng([config.seed, 99]))

    # ------------------------------------------------------------------ construction
    @classmethod
    def generate(cls, config: WorldConfig) -> World:
        """Draw every entity of the world from ``config.seed`` (events are drawn separately, in a stream)."""
        seed = config.seed
        catalog = make_catalog(config.products, config.n_days, np.random.default_rng([seed, 1]))
        population = make_population(config.n_users, np.random.default_rng([seed, 2]), config.bot_share)
        market = make_market(catalog, config.n_days, config.start, np.random.default_rng([seed, 3]))
        return cls(config, catalog, population, market)

    @classmethod
    def load(cls, directory: str | Path) -> World:
        """The world written to ``directory`` (rebuilt from ``truth/world.json``; entities are seed-determined)."""
        path = Path(directory) / "truth" / "world.json"
        if not path.is_file():
            raise UserError(f"no synthetic world in {directory}: {path} is missing (run `adpilot world --out ...`)")
        return cls.generate(WorldConfig.from_json(path.read_text()))

    # ------------------------------------------------------------------ index look-ups
    def user_index(self, user_ids: ArrayLike) -> np.ndarray:
        """Positions of raw world ``user_ids``; an unknown id is a :class:`UserError`."""
        return self._positions(self._user_index, user_ids, "user_ids")

    def ad_index(self, ad_ids: ArrayLike) -> np.ndarray:
        return self._positions(self._ad_index, ad_ids, "ad_ids")

    def creative_index(self, creative_ids: ArrayLike) -> np.ndarray:
        return self._positions(self._creative_index, creative_ids, "creative_ids")

    @staticmethod
    def _positions(index: pd.Index, ids: ArrayLike, name: str) -> np.ndarray:
        values = ids.to_numpy(zero_copy_only=False) if isinstance(ids, pa.Array | pa.ChunkedArray) else ids
        values = np.atleast_1d(np.asarray(values, dtype=object))
        pos = index.get_indexer(values)
        if (pos < 0).any():
            raise UserError(f"`{name}` has an id unknown to this world: {values[pos < 0][0]!r}")
        return pos

    # ------------------------------------------------------------------ the choice model
    def match_terms(self, u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(m, s, r) of the module docstring for user positions ``u`` and product positions ``p``, shape (n,)."""
        pop, cat = self.population, self.catalog
        m = np.log(np.clip(self.n_leaves * pop.interest[u, cat.leaf[p]], 0.05, 20.0))
        s = np.log(np.clip(8.0 * pop.style[u, cat.style[p]], 0.1, 8.0))
        return m, s, self.log_relative_price[p]

    def _text_features(self, texts: Sequence[str], products: np.ndarray) -> CreativeTerms:
        """Attribute coverage, style mention and bad-length flag of each text about its product."""
        n = len(texts)
        cov, ment, bad = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, (text, p) in enumerate(zip(texts, products, strict=True)):
            low = text.lower()
            words = self.catalog.attr_words[p]
            hits = [zh in text or en.lower() in low for zh, en in words[:-1]]
            cov[i] = sum(hits) / len(hits)
            ment[i] = float(words[-1][0] in text or words[-1][1].lower() in low)
            bad[i] = float(not 6 <= len(text) <= 90)
        return CreativeTerms(1.2 * (cov - 0.5) - 0.4 * bad, ment, cov)

    def creative_quality(self, texts: Sequence[str], ad_ids: ArrayLike) -> np.ndarray:
        """User-independent part of a creative's effect on click logit: ``1.2·(cov − 0.5) − 0.4·bad``, shape (n,).

        The create room can score its copy with this; the full effect also rewards naming a style the user likes.
        """
        return self._text_features(list(texts), self.market.ad_product[self.ad_index(ad_ids)]).quality

    def _creative_terms(self, n: int, ads: np.ndarray, creative_ids: ArrayLike, creative_texts: ArrayLike,
                        creative_quality: ArrayLike) -> CreativeTerms:
        given = [x is not None for x in (creative_ids, creative_texts, creative_quality)]
        if sum(given) > 1:
            raise UserError("give at most one of `creative_ids`, `creative_texts`, `creative_quality`")
        if creative_texts is not None:
            texts = _broadcast(creative_texts, n, "creative_texts")
            return self._text_features([str(t) for t in texts], self.market.ad_product[ads])
        if creative_ids is not None:
            c = self.creative_index(_broadcast(creative_ids, n, "creative_ids"))
            if (self.market.creative_ad[c] != ads).any():
                raise UserError("`creative_ids` must belong to the ads given in `ad_ids`")
            return self.creatives.take(c)
        if creative_quality is not None:
            q = np.asarray(_broadcast(creative_quality, n, "creative_quality"), dtype=np.float64)
            return CreativeTerms(q, np.zeros(n), np.clip(0.5 + q / 1.2, 0.0, 1.0))
        return CreativeTerms(np.zeros(n), np.zeros(n), np.full(n, 0.5))

    def _context(self, n: int, hour: ArrayLike, device: ArrayLike, slot: ArrayLike) -> np.ndarray:
        h = np.asarray(_broadcast(hour, n, "hour"), dtype=np.float64)
        if ((h < 0) | (h >= 24)).any():
            raise UserError(f"`hour` must be in [0, 24), got {h[(h < 0) | (h >= 24)][0]}")
        return (_lookup(SLOT_EFFECT, _broadcast(slot, n, "slot"), "slot")
                + _lookup(DEVICE_EFFECT, _broadcast(device, n, "device"), "device") + _hour_effect(h))

    def click_logit(self, u: np.ndarray, ads: np.ndarray, context: np.ndarray, creative: CreativeTerms
                    ) -> np.ndarray:
        """The click logit of the module docstring from positions (users ``u``, ads ``ads``), shape (n,).

        ``context`` is the slot + device + hour term (:func:`context_effect`). Position-level, for simulators.
        """
        p = self.market.ad_product[ads]
        m, s, r = self.match_terms(u, p)
        pop = self.population
        return (self._bias_click + 0.7 * m + 0.35 * s - 0.2 * pop.price_sensitivity[u] * r
                + 0.3 * self.catalog.appeal[p] + context + creative.quality
                + 0.5 * creative.mention * np.clip(s, -1, 1) + 4.5 * pop.is_bot[u])

    def conversion_logit(self, u: np.ndarray, ads: np.ndarray, desktop: np.ndarray, creative: CreativeTerms
                         ) -> np.ndarray:
        """The post-click conversion logit from positions, shape (n,) (bots are zeroed by :meth:`p_convert`)."""
        p = self.market.ad_product[ads]
        m, s, r = self.match_terms(u, p)
        return (self._bias_conv + 0.6 * m + 0.4 * s - 0.8 * self.population.price_sensitivity[u] * r
                + 0.5 * self.catalog.appeal[p] + 0.3 * (creative.coverage - 0.5) + 0.2 * desktop)

    def p_click(self, user_ids: ArrayLike, ad_ids: ArrayLike, *, creative_ids: ArrayLike = None,
                creative_texts: ArrayLike = None, creative_quality: ArrayLike = None, hour: ArrayLike = 20,
                device: ArrayLike = "mobile", slot: ArrayLike = "feed") -> np.ndarray:
        """True click probability, float64 shape (n,), for n (user, ad) pairs; other arguments may be scalars.

        The creative is one of: ``creative_ids`` (this world's creatives), ``creative_texts`` (any copy, scored by
        its wording about the ad's product), ``creative_quality`` (a logit term as :meth:`creative_quality`
        returns); with none, an average creative.
        """
        u, ads = self._pairs(user_ids, ad_ids)
        creative = self._creative_terms(len(u), ads, creative_ids, creative_texts, creative_quality)
        return expit(self.click_logit(u, ads, self._context(len(u), hour, device, slot), creative))

    def p_convert(self, user_ids: ArrayLike, ad_ids: ArrayLike, *, creative_ids: ArrayLike = None,
                  creative_texts: ArrayLike = None, creative_quality: ArrayLike = None,
                  device: ArrayLike = "mobile") -> np.ndarray:
        """True conversion probability after a click, float64 shape (n,); 0 for bot users."""
        u, ads = self._pairs(user_ids, ad_ids)
        creative = self._creative_terms(len(u), ads, creative_ids, creative_texts, creative_quality)
        dev = _broadcast(device, len(u), "device")
        _lookup(DEVICE_EFFECT, dev, "device")
        p = expit(self.conversion_logit(u, ads, (dev == "desktop").astype(np.float64), creative))
        return np.where(self.population.is_bot[u], 0.0, p)

    def _pairs(self, user_ids: ArrayLike, ad_ids: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        u, ads = self.user_index(user_ids), self.ad_index(ad_ids)
        if len(u) != len(ads):
            if len(ads) == 1:
                ads = np.repeat(ads, len(u))
            elif len(u) == 1:
                u = np.repeat(u, len(ads))
            else:
                raise UserError(f"`ad_ids` must have one value per user ({len(u)}), got {len(ads)}")
        return u, ads

    def _calibrate(self, rng: np.random.Generator, n: int = 20_000) -> None:
        """Set the click and conversion intercepts so that random ads shown to random human users in random
        context hit the target rates (bots are left out: their clicks are not the market's CTR)."""
        u = rng.integers(0, self.population.n, n)
        ads = rng.integers(0, len(self.market.ad_product), n)
        c = self.market.ad_creative_start[ads] + (rng.random(n) * self.market.ad_creative_count[ads]).astype(int)
        ctx = self._context(n, rng.integers(0, 24, n), rng.choice(DEVICES, n, p=[0.75, 0.2, 0.05]),
                            rng.choice(SLOTS, n))
        creative = self.creatives.take(c)
        base_click = self.click_logit(u, ads, ctx, creative)
        human = (~self.population.is_bot[u]).astype(np.float64)
        self._bias_click = _solve_bias(base_click, CTR_TARGET, human)
        weight = expit(base_click + self._bias_click) * human
        base_conv = self.conversion_logit(u, ads, rng.random(n) < 0.2, creative)
        self._bias_conv = _solve_bias(base_conv, CVR_TARGET, weight)

    # ------------------------------------------------------------------ sampling shared by events and traffic
    def draw_leaf(self, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One intent leaf per user position, drawn from the user's interest θ (inverse CDF, vectorised)."""
        return _draw_rows(self.population.interest[u], rng)

    def product_sampler(self, day: int) -> ProductSampler:
        """Draws products of a leaf among those launched by ``day``."""
        return ProductSampler(self.catalog, day)

    def _query_pool(self) -> pa.Array:
        """``QUERIES_PER_TOPIC`` search queries per (leaf, style): zh style+leaf, attribute+leaf, brand+leaf, en."""
        queries = []
        for li, (c, leaf) in enumerate(LEAVES):
            top = CATEGORIES[c]
            for si in range(8):
                zh, en = top.style_words[si]
                values = top.attributes[0][1]
                value = values[(li * 8 + si) % len(values)]
                brand = top.brands[(li + si) % len(top.brands)]
                queries += [f"{zh}{leaf.zh}", f"{value[0]}{leaf.zh}", f"{brand[0]} {leaf.zh}", f"{en} {leaf.en}"]
        return pa.array(queries)

    def draw_query(self, leaf: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Index into the query pool for searches about ``leaf`` by users ``u`` (style drawn from their taste)."""
        style = _draw_rows(self.population.style[u], rng)
        return (leaf * 8 + style) * QUERIES_PER_TOPIC + rng.integers(0, QUERIES_PER_TOPIC, len(u))

    @property
    def queries(self) -> pa.Array:
        return self._queries

    # ------------------------------------------------------------------ truth for evaluations
    def true_interests(self, user_ids: ArrayLike) -> np.ndarray:
        """The users' true leaf interest θ, float32 shape (n, n_leaves); columns follow :attr:`leaf_names`."""
        return self.population.interest[self.user_index(user_ids)]

    def top_interests(self, user_ids: ArrayLike, k: int = 3) -> list[list[str]]:
        """The ``k`` leaf names each user likes most (ground truth for interest recovery)."""
        order = np.argsort(-self.true_interests(user_ids), axis=1)[:, :k]
        return [[self.leaf_names[j] for j in row] for row in order]

    def traffic(self, day: int, n_requests: int, seed: int = 0) -> pa.Table:
        """``n_requests`` ad requests on ``day`` (0-based): who asks, when, on what device, slot, page and query.

        Columns: request_id, user_id (raw), ts, hour, device, geo, slot, page, query, consent_personalisation,
        consent_ads; sorted by ``ts``. Users arrive by activity and at their habitual hours.
        """
        if not 0 <= day < self.config.n_days:
            raise UserError(f"`day` must be in [0, {self.config.n_days}), got {day}")
        if n_requests < 0:
            raise UserError(f"`n_requests` must be >= 0, got {n_requests}")
        rng = np.random.default_rng([self.config.seed, 7, day, seed])
        pop = self.population
        cum = np.cumsum(pop.activity)
        u = np.minimum(np.searchsorted(cum, rng.random(n_requests) * cum[-1]), pop.n - 1)
        hour = np.where(pop.is_bot[u], rng.random(n_requests) * 24,
                        (pop.peak_hour[u] + rng.normal(0, 1.5, n_requests)) % 24)
        order = np.argsort(hour, kind="stable")
        u, hour = u[order], hour[order]
        device = draw_device(pop.p_mobile[u], rng)
        slot = rng.choice(len(SLOTS), n_requests, p=[0.25, 0.25, 0.3, 0.2])
        leaf = self.draw_leaf(u, rng)
        items = self.product_sampler(day).draw(leaf, rng)
        q = self.draw_query(leaf, u, rng)
        item_pages = pc.binary_join_element_wise("item/", self.catalog.ids.take(pa.array(items)), "")
        page = pc.if_else(pa.array(slot == 2), item_pages,
                                  pa.array(np.array(["home", "search", "item", "feed"])[slot]))
        query = pc.if_else(pa.array(slot == 1), self._queries.take(pa.array(q)), pa.nulls(n_requests,
                                                                                                   pa.string()))
        start = self.config.start + timedelta(days=day)
        ts = np.datetime64(start.replace(tzinfo=None), "us") + (hour * 3.6e9).astype("timedelta64[us]")
        return pa.table({
            "request_id": pc.binary_join_element_wise(f"r{day}-{seed}-", pc.cast(pa.array(np.arange(n_requests)),
                                                                                pa.string()), ""),
            "user_id": pop.ids.take(pa.array(u)),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "hour": hour.astype(np.int8),
            "device": pa.array(np.array(DEVICES)[device]),
            "geo": pop.table.column("geo").take(pa.array(u)),
            "slot": pa.array(np.array(SLOTS)[slot]),
            "page": page,
            "query": query,
            "consent_personalisation": pop.consent_personalisation[u],
            "consent_ads": pop.consent_ads[u],
        })


def _draw_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column per row of an (n, k) row-stochastic matrix, by inverse CDF; shape (n,)."""
    cdf = np.cumsum(probabilities, axis=1)
    below = cdf < rng.random(len(cdf)).astype(cdf.dtype)[:, None] * cdf[:, -1:]
    return np.minimum(below.sum(axis=1), probabilities.shape[1] - 1)


def _hour_effect(hour: np.ndarray) -> np.ndarray:
    """Evening traffic clicks more: a cosine peaking at 21:00."""
    return 0.25 * np.cos(2 * np.pi * (hour - 21.0) / 24.0)


def context_effect(hour: np.ndarray, device_code: np.ndarray, slot_code: np.ndarray) -> np.ndarray:
    """Slot + device + hour part of the click logit from integer codes (positions in SLOTS / DEVICES)."""
    slot = np.array([SLOT_EFFECT[s] for s in SLOTS])
    device = np.array([DEVICE_EFFECT[d] for d in DEVICES])
    return slot[slot_code] + device[device_code] + _hour_effect(hour)


def draw_device(p_mobile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0 mobile with the user's probability, else 1 desktop (85%) or 2 tablet."""
    r = rng.random(len(p_mobile))
    return np.where(r < p_mobile, 0, np.where(r < p_mobile + (1 - p_mobile) * 0.85, 1, 2))


def _solve_bias(logit: np.ndarray, target: float, weight: np.ndarray | None = None) -> float:
    """The intercept b with weighted mean of expit(logit + b) equal to ``target`` (bisection; monotone)."""
    w = np.ones_like(logit) if weight is None else weight
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.average(expit(logit + mid), weights=w) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


class ProductSampler:
    """Draw products uniformly within given leaves among those launched by a given day (no search, O(1) a draw).

    Products are ordered by (leaf, launch day), so the items live on ``day`` are a prefix of their leaf's slice.
    Popularity enters the browsing choice as a utility term ``log popularity`` over these uniform candidates.
    """

    def __init__(self, catalog: Catalog, day: int) -> None:
        self._order = np.lexsort((catalog.launch_day, catalog.leaf))
        leaf_sorted = catalog.leaf[self._order]
        self._start = np.searchsorted(leaf_sorted, np.arange(len(LEAVES)), side="left")
        live = catalog.launch_day <= day
        self._count = np.bincount(catalog.leaf[live], minlength=len(LEAVES))

    def draw(self, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One product position per entry of ``leaf``, shape like ``leaf``."""
        offset = (rng.random(leaf.shape) * self._count[leaf]).astype(np.int64)
        return self._order[self._start[leaf] + offset]
