"""The advertising side: one advertiser per brand, its campaigns, ads on its products and 2–4 creatives per ad.

Ads go on about a third of the catalogue (including some late-launched items, i.e. cold-start ads). Creatives are
filled from :data:`~adpilot.datasets.world.vocab.CREATIVE_TEMPLATES` of graded richness, so their true quality
differs and a creative bandit has something to learn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from adpilot.datasets.world.catalog import Catalog, brand_names
from adpilot.datasets.world.vocab import CATEGORIES, CREATIVE_TEMPLATES, GEOS, LEAVES


@dataclass(frozen=True)
class Market:
    """Advertisers, campaigns, ads and creatives as Arrow tables (store column names), plus index arrays.

    ``ad_product[i]`` is the catalogue index of ad ``i``; ``creative_ad[j]`` the ad index of creative ``j``;
    ``ad_creative_start``/``ad_creative_count`` give each ad's creatives as a contiguous range.
    """

    advertisers: pa.Table
    campaigns: pa.Table
    ads: pa.Table
    creatives: pa.Table
    ad_product: np.ndarray
    creative_ad: np.ndarray
    ad_creative_start: np.ndarray
    ad_creative_count: np.ndarray
    ad_active: np.ndarray


def _fill(template: str, words: tuple[tuple[str, str], ...], lang: int, leaf: str, brand: str, selling: str) -> str:
    style = words[-1][lang]
    attrs = [w[lang] for w in words[:-1]] + [style] * 3
    return template.format(style=style, a1=attrs[0], a2=attrs[1], a3=attrs[2], leaf=leaf, brand=brand,
                           selling=selling)


def make_market(catalog: Catalog, n_days: int, start: datetime, rng: np.random.Generator) -> Market:
    """Draw the advertising side for ``catalog`` over ``n_days`` from ``start``."""
    brands = brand_names()
    n_ads = int(np.clip(round(0.35 * catalog.n), min(catalog.n, 20), 5000))
    ad_product = np.sort(rng.choice(catalog.n, n_ads, replace=False))
    ad_brand = catalog.brand[ad_product]
    advertisers = pa.table({
        "advertiser_id": [f"adv{b:03d}" for b in range(len(brands))],
        "name": [f"{zh} ({en})" if zh != en else zh for zh, en in brands],
        "domain": [f"{en.lower()}.example.com" for _, en in brands],
        "status": ["active"] * len(brands),
        "api_key_hash": pa.nulls(len(brands), pa.string()),
    })
    # 1-3 campaigns per brand; each ad joins one of its brand's campaigns.
    n_camp = rng.integers(1, 4, len(brands))
    camp_of_ad = (rng.random(n_ads) * n_camp[ad_brand]).astype(np.int64)
    camp_key = ad_brand * 4 + camp_of_ad
    used, ad_campaign = np.unique(camp_key, return_inverse=True)
    camp_brand = used // 4
    n_c = len(used)
    ads_per_camp = np.bincount(ad_campaign, minlength=n_c)
    strategy = rng.choice(["manual_cpc", "target_cpa", "max_clicks"], n_c, p=[0.5, 0.3, 0.2])
    median_price = np.array([catalog.price[ad_product[ad_campaign == c]].mean() for c in range(n_c)])
    daily = np.round(np.exp(rng.normal(np.log(150.0), 0.5, n_c)) * np.sqrt(ads_per_camp), 0)
    targeting = []
    for c in range(n_c):
        leaves = sorted({int(catalog.leaf[p]) for p in ad_product[ad_campaign == c]})
        tops = sorted({LEAVES[lf][0] for lf in leaves})
        t = rng.random(3)
        targeting.append(json.dumps({
            "segments": [], "interests": [CATEGORIES[i].zh for i in tops] + [LEAVES[lf][1].zh for lf in leaves],
            "interest_reach": 0.3, "lookalike_seed": [],
            "geo": sorted(rng.choice(GEOS, 3, replace=False).tolist()) if t[0] < 0.2 else [],
            "device": ["mobile"] if t[1] < 0.15 else [],
            "hours": list(range(8, 24)) if t[2] < 0.1 else [],
            "exclude_purchased": True, "negative_keywords": [],
        }, ensure_ascii=False))
    camp_ids = [f"cmp{c:04d}" for c in range(n_c)]
    cap = rng.random(n_c)
    campaigns = pa.table({
        "campaign_id": camp_ids,
        "advertiser_id": [f"adv{b:03d}" for b in camp_brand],
        "name": [f"{brands[b][0]} 推广计划 {c}" for c, b in enumerate(camp_brand)],
        "status": np.where(rng.random(n_c) < 0.05, "paused", "active"),
        "total_budget": daily * n_days,
        "daily_budget": daily,
        "start": pa.array([start] * n_c, pa.timestamp("us", tz="UTC")),
        "end": pa.array([start + timedelta(days=n_days)] * n_c, pa.timestamp("us", tz="UTC")),
        "timezone": ["Asia/Shanghai"] * n_c,
        "bid_strategy": strategy,
        "max_cpc": np.round(np.clip(0.004 * median_price, 0.3, 5.0), 2),
        "target_cpa": pa.array(np.where(strategy == "target_cpa", np.round(0.12 * median_price, 2), np.nan),
                               from_pandas=True),
        "freq_cap_daily": pa.array(np.where(cap < 0.6, rng.integers(3, 11, n_c), 0), mask=cap >= 0.6,
                                   type=pa.int32()),
        "freq_cap_lifetime": pa.nulls(n_c, pa.int32()),
        "targeting": targeting,
    })
    ad_ids = [f"ad{i:05d}" for i in range(n_ads)]
    ad_active = rng.random(n_ads) >= 0.03
    ads = pa.table({
        "ad_id": ad_ids,
        "campaign_id": [camp_ids[c] for c in ad_campaign],
        "product_id": catalog.ids.take(pa.array(ad_product)),
        "landing_url": [f"https://shop.example.com/item/{catalog.ids[p].as_py()}" for p in ad_product],
        "status": np.where(ad_active, "active", "paused"),
    })
    cr_ids, cr_ad, cr_text, cr_lang, cr_source = [], [], [], [], []
    count = rng.integers(2, 5, n_ads)
    for i, p in enumerate(ad_product):
        lang = int(catalog.language[p])
        top = CATEGORIES[catalog.top[p]]
        leaf = LEAVES[catalog.leaf[p]][1]
        chosen = np.sort(rng.choice(len(CREATIVE_TEMPLATES), count[i], replace=False))
        selling = top.selling[i % len(top.selling)][lang]
        for j, k in enumerate(chosen):
            template, source = CREATIVE_TEMPLATES[k]
            cr_ids.append(f"{ad_ids[i]}-c{j}")
            cr_ad.append(i)
            cr_text.append(_fill(template[lang], catalog.attr_words[p], lang, (leaf.zh, leaf.en)[lang],
                                 brands[catalog.brand[p]][lang], selling))
            cr_lang.append(("zh", "en")[lang])
            cr_source.append(source)
    n_cr = len(cr_ids)
    creatives = pa.table({
        "creative_id": cr_ids,
        "ad_id": [ad_ids[i] for i in cr_ad],
        "text": cr_text,
        "language": cr_lang,
        "slot": pa.nulls(n_cr, pa.string()),
        "audience": pa.nulls(n_cr, pa.string()),
        "source": cr_source,
        "model": pa.nulls(n_cr, pa.string()),
        "scores": ["{}"] * n_cr,
        "status": ["active"] * n_cr,
    })
    start_idx = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Market(advertisers, campaigns, ads, creatives, ad_product, np.asarray(cr_ad), start_idx, count,
                  ad_active)
