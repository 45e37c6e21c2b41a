"""Behaviour: sessions of page views, searches, clicks, carts, purchases, reviews and ad events, vectorised.

A day's events come from sessions. Each session has a user (drawn by activity), an hour (the user's habit), a
device, an intent leaf drawn from the user's interest θ, maybe a search (query about the leaf in a style the user
likes) and a geometric number of steps (mean 3.3). At each step the user looks at one of 4 candidate products of
the leaf (drawn uniformly among launched items; 20% of steps drift to another leaf drawn from θ), choosing by
utility ``z = 0.7 m + 0.35 s − β r + 0.3 a`` plus log popularity and Gumbel noise (terms as in
:mod:`~adpilot.datasets.world.oracle`).
A step emits, with these probabilities:

- ``click`` (listing click, 60%) then ``page_view`` (always);
- ``add_to_cart`` expit(−3.6 + 0.8 z); ``purchase`` given cart expit(−0.8 + 0.6 z − 0.5 β r); ``review`` given
  purchase 35%, with a rating from z and a text of matching sentiment that names the product's attribute values;
- for users who accept ads, an ``ad_impression`` (30%) of a uniformly random active ad whose product has
  launched, with a uniformly random creative of it (a uniform logging policy: propensity 1 / number of live ads
  that day), in slot ``home_banner`` or ``search_top`` on a session's first step and ``item_related`` (70%) or
  ``feed`` later; an ``ad_click`` drawn from the true p_click and a ``conversion`` from the true p_convert, valued
  at the product price.

Bots (``truth/users.parquet`` ``is_bot``) make bursts of 10–30 clicks seconds apart on random items, see an ad at
every step and click about a third of them (their true p_click carries +4.5 on the logit), and never buy.
Each chunk of events is sorted by time; reviews come 1–48 hours after the purchase.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import expit

from adpilot.datasets.world.oracle import World, context_effect, draw_device
from adpilot.datasets.world.vocab import DEVICES, LEAVES, REVIEW_TEMPLATES, SLOTS
from adpilot.schema import EVENT_ARROW_SCHEMA

TYPES = ("search", "click", "page_view", "ad_impression", "ad_click", "conversion", "add_to_cart", "purchase",
         "review")
SEARCH, CLICK, VIEW, IMP, ADCLICK, CONV, CART, BUY, REVIEW = range(len(TYPES))
_CANDIDATES = 4
# Page code (home, search, item, feed) of an event by (type, session searched?, ad slot): searches are on the
# search page, listing clicks on the search page or the feed, ad events on their slot's page, the rest on the item.
_PAGE_OF = np.full((len(TYPES), 2, 4), 2, dtype=np.int8)
_PAGE_OF[SEARCH] = 1
_PAGE_OF[CLICK, 0], _PAGE_OF[CLICK, 1] = 3, 1
_PAGE_OF[IMP:CONV + 1] = np.arange(4, dtype=np.int8)
_US = 1_000_000


def review_pool(world: World) -> pa.Array:
    """Six review texts per product (2 positive, 2 middling, 2 negative), in the product's language."""
    cat = world.catalog
    texts = []
    for p in range(cat.n):
        lang = int(cat.language[p])
        words = cat.attr_words[p]
        fill = {"a1": words[0][lang], "a2": words[1][lang], "style": words[-1][lang],
                "title_short": (LEAVES[cat.leaf[p]][1].zh, LEAVES[cat.leaf[p]][1].en)[lang]}
        for sentiment in ("pos", "mid", "neg"):
            texts += [t[lang].format(**fill) for t in REVIEW_TEMPLATES[sentiment]]
    return pa.array(texts)


def _within(lengths: np.ndarray) -> np.ndarray:
    """Position of each element inside its group, for groups laid out contiguously with these lengths."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts


class DayGenerator:
    """Generates the events of one (day, part) of a world as an ``EVENT_ARROW_SCHEMA`` table."""

    def __init__(self, world: World, reviews: pa.Array) -> None:
        self.world = world
        self.reviews = reviews
        self.launch = world.catalog.launch_day[world.market.ad_product]
        self.type_names = pa.array(TYPES)
        self.log_popularity = np.log(world.catalog.popularity)
        self.activity_cum = np.cumsum(world.population.activity)
        self.creative_ids = world.market.creatives.column("creative_id").combine_chunks()
        self.geos = world.population.table.column("geo").combine_chunks()
        self.devices, self.slots = pa.array(DEVICES), pa.array(SLOTS)
        self.pages = pa.array(["home", "search", "item", "feed"])  # the page of each slot, in SLOTS order

    def events(self, day: int, part: int, n_events: int) -> pa.Table:
        """Exactly ``n_events`` events of ``day`` (0-based) sorted by time, from generator ``[seed, 10, day, part]``.

        ``event_id`` and ``session_id`` are decimal strings of ``(day·1000 + part)·10¹⁰ + running number``,
        unique within a world.
        """
        rng = np.random.default_rng([self.world.config.seed, 10, day, part])
        plans, have, n_sessions = [], 0, 0
        while have < n_events:
            # Sessions average ~7.7 events: ask for ~10% more than needed, so one batch nearly always suffices.
            plan = self._sessions(day, int((n_events - have) / 7.0) + 16, rng)
            plan["session"] += n_sessions
            n_sessions = int(plan.pop("n_sessions")[0]) + n_sessions
            plans.append(plan)
            have += len(plan["ts"])
        if not plans:
            return EVENT_ARROW_SCHEMA.empty_table()
        plan = {k: np.concatenate([p[k] for p in plans])[:n_events] for k in plans[0]}
        order = np.argsort(plan["ts"])
        return self._table({k: v[order] for k, v in plan.items()}, (day * 1000 + part) * 10**10)

    def _table(self, e: dict[str, np.ndarray], base: int) -> pa.Table:
        """Arrow columns from the per-event plan arrays (one vectorised ``take`` per string column)."""
        w, kind = self.world, e["kind"]
        ad_ev = (kind == IMP) | (kind == ADCLICK) | (kind == CONV)
        is_review, is_search = kind == REVIEW, kind == SEARCH
        return pa.table({
            "event_id": pc.cast(pa.array(base + np.arange(len(kind))), pa.string()),
            "user_id": w.population.ids.take(pa.array(e["user"])),
            "session_id": pc.cast(pa.array(base + e["session"]), pa.string()),
            "ts": pa.array(e["ts"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "type": self.type_names.take(pa.array(kind)),
            "item_id": w.catalog.ids.take(pa.array(e["item"], mask=(kind == SEARCH) | (kind == IMP) | (kind == ADCLICK))),
            "ad_id": w.ad_ids.take(pa.array(e["ad"], mask=~ad_ev)),
            "creative_id": self.creative_ids.take(pa.array(e["creative"], mask=~ad_ev)),
            "price": pa.array(e["price"], mask=~((kind == VIEW) | (kind == CART) | (kind == BUY))),
            "value": pa.array(e["price"], mask=~((kind == BUY) | (kind == CONV))),
            "query": w.queries.take(pa.array(e["query"], mask=~is_search)),
            "text": self.reviews.take(pa.array(e["review"], mask=~is_review)),
            "rating": pa.array(e["rating"], mask=~is_review),
            "device": self.devices.take(pa.array(e["device"])),
            "geo": self.geos.take(pa.array(e["user"])),
            "page": self.pages.take(pa.array(e["page"])),
            "slot": self.slots.take(pa.array(e["slot"], mask=~ad_ev)),
        }, schema=EVENT_ARROW_SCHEMA)

    def _sessions(self, day: int, n_sessions: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The plan of ``n_sessions`` sessions: one array per event attribute (codes and positions, not text)."""
        w, pop, cat, market = self.world, self.world.population, self.world.catalog, self.world.market
        sampler = w.product_sampler(day)
        s_n = n_sessions
        u = np.minimum(np.searchsorted(self.activity_cum, rng.random(s_n) * self.activity_cum[-1]), pop.n - 1)
        bot = pop.is_bot[u]
        hour = np.where(bot, rng.random(s_n) * 24, (pop.peak_hour[u] + rng.normal(0, 1.5, s_n)) % 24)
        day_us = int(w.config.start.timestamp()) * _US + day * 86_400 * _US
        start = day_us + (hour * 3600 * _US).astype(np.int64)
        device = draw_device(pop.p_mobile[u], rng)
        leaf = w.draw_leaf(u, rng)
        searched = (rng.random(s_n) < 0.35) & ~bot
        query = w.draw_query(leaf, u, rng)
        n_steps = np.where(bot, rng.integers(10, 31, s_n), rng.geometric(0.3, s_n))

        # steps -------------------------------------------------------------------------------------------
        sess = np.repeat(np.arange(s_n), n_steps)
        k = _within(n_steps)
        t_n = len(sess)
        ut, bt = u[sess], bot[sess]
        leaf_t = leaf[sess]
        drift = rng.random(t_n) < 0.2
        leaf_t[drift] = w.draw_leaf(ut[drift], rng)
        leaf_t[bt] = rng.integers(0, w.n_leaves, int(bt.sum()))
        cand = sampler.draw(np.repeat(leaf_t, _CANDIDATES).reshape(t_n, _CANDIDATES), rng)
        beta_t = pop.price_sensitivity[ut]
        style_t = pop.style[ut]
        s_c = np.log(np.clip(8.0 * np.take_along_axis(style_t, cat.style[cand], axis=1), 0.1, 8.0))
        z_c = 0.35 * s_c - beta_t[:, None] * w.log_relative_price[cand] + 0.3 * cat.appeal[cand]
        # Gumbel-max choice; −log E with E ~ Exp(1) is a Gumbel draw at one logarithm instead of two.
        pick = np.argmax(z_c + self.log_popularity[cand] - np.log(rng.standard_exponential(z_c.shape)), axis=1)
        item = cand[np.arange(t_n), pick]
        item[bt] = cand[bt, 0]
        m_t = np.log(np.clip(w.n_leaves * pop.interest[ut, leaf_t], 0.05, 20.0))
        z = 0.7 * m_t + z_c[np.arange(t_n), pick]
        r_item = w.log_relative_price[item]
        gap = rng.exponential(np.where(bt, 1.5, 45.0), t_n) * _US
        csum = np.cumsum(gap)
        first = np.cumsum(n_steps) - n_steps
        t_step = (start[sess] + 10 * _US + (csum - np.repeat(csum[first] - gap[first], n_steps))).astype(np.int64)

        # ads shown on this step ------------------------------------------------------------------------
        live_ads = np.flatnonzero(market.ad_active & (self.launch <= day))
        ad = live_ads[rng.integers(0, len(live_ads), t_n)]
        creative = market.ad_creative_start[ad] + (rng.random(t_n) * market.ad_creative_count[ad]).astype(np.int64)
        slot = np.where(k == 0, np.where(searched[sess], 1, 0), np.where(rng.random(t_n) < 0.7, 2, 3))
        ctx = context_effect((t_step // _US % 86_400) / 3600.0, device[sess], slot)
        terms = w.creatives.take(creative)
        p_click = expit(w.click_logit(ut, ad, ctx, terms))
        conv_logit = w.conversion_logit(ut, ad, (device[sess] == 1).astype(np.float64), terms)
        p_conv = np.where(bt, 0.0, expit(conv_logit))

        # which events each step emits ----------------------------------------------------------------------
        mask = np.zeros((t_n, len(TYPES)), dtype=bool)
        human = ~bt
        mask[:, SEARCH] = searched[sess] & (k == 0)
        mask[:, CLICK] = bt | (rng.random(t_n) < 0.6)
        mask[:, VIEW] = human
        mask[:, IMP] = pop.consent_ads[ut] & (bt | (rng.random(t_n) < 0.3))
        mask[:, ADCLICK] = mask[:, IMP] & (rng.random(t_n) < p_click)
        mask[:, CONV] = mask[:, ADCLICK] & (rng.random(t_n) < p_conv)
        mask[:, CART] = human & (rng.random(t_n) < expit(-3.6 + 0.8 * z))
        mask[:, BUY] = mask[:, CART] & (rng.random(t_n) < expit(-0.8 + 0.6 * z - 0.5 * beta_t * r_item))
        mask[:, REVIEW] = mask[:, BUY] & (rng.random(t_n) < 0.35)

        offset = np.zeros((t_n, len(TYPES)), dtype=np.int64)
        offset[:, SEARCH] = -8 * _US
        offset[:, CLICK] = -2 * _US
        offset[:, IMP] = 1 * _US
        offset[:, ADCLICK] = offset[:, IMP] + (rng.exponential(5.0, t_n) * _US).astype(np.int64)
        offset[:, CONV] = offset[:, ADCLICK] + (rng.exponential(600.0, t_n) * _US).astype(np.int64)
        offset[:, CART] = (rng.exponential(20.0, t_n) * _US).astype(np.int64)
        offset[:, BUY] = offset[:, CART] + (rng.exponential(60.0, t_n) * _US).astype(np.int64)
        offset[:, REVIEW] = offset[:, BUY] + (rng.uniform(1, 48, t_n) * 3600 * _US).astype(np.int64)

        step, kind = np.nonzero(mask)
        n = len(step)
        is_review = kind == REVIEW
        reviewed = step[is_review]
        rating = np.zeros(n)
        rating[is_review] = np.clip(np.round(3.9 + 0.8 * z[reviewed] + rng.normal(0, 0.8, len(reviewed))), 1, 5)
        review = np.zeros(n, dtype=np.int64)
        sentiment = np.where(rating[is_review] >= 4, 0, np.where(rating[is_review] >= 3, 1, 2))
        review[is_review] = item[reviewed] * 6 + sentiment * 2 + (rng.random(len(reviewed)) < 0.5)
        sess_e = sess[step]
        slot_e = slot.astype(np.int8)[step]
        item_idx = item.astype(np.int32)[step]
        conv = kind == CONV
        ad_e = ad.astype(np.int32)[step]
        item_idx[conv] = market.ad_product[ad_e[conv]]
        return {
            "ts": t_step[step] + offset[step, kind],
            "kind": kind.astype(np.int8),
            "user": ut.astype(np.int32)[step],
            "session": sess_e,
            "item": item_idx,
            "ad": ad_e,
            "creative": creative.astype(np.int32)[step],
            "price": cat.price[item_idx],
            "rating": rating,
            "review": review.astype(np.int32),
            "query": query.astype(np.int32)[sess_e],
            "device": device.astype(np.int8)[sess_e],
            "page": _PAGE_OF[kind, searched.astype(np.int8)[sess_e], slot_e],
            "slot": slot_e,
            "n_sessions": np.array([s_n]),
        }
