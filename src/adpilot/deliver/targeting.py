"""Targeting rules evaluated for one request, as boolean masks over candidate ads.

Semantics (documented here, relied on by tests):

* geo, device and hour lists are allow-lists, AND-ed; an empty list allows everyone, and a request without the
  attribute matches only campaigns that do not restrict it. Hours are the campaign's local hours.
* segments, interests and look-alike seeds form the campaign's *audience*: a user must match at least one of them
  (OR). A segment matches by id or description; an interest word matches when cosine(vector, word) reaches the
  campaign's threshold — the explicit ``interest_threshold``, or the cosine that the ``interest_reach`` share of
  profiled users reaches (:func:`adpilot.deliver.snapshot.reach_thresholds`); a look-alike matches the seeds
  themselves and users within the same kind of threshold of the seeds' centroid.
* Without personalisation (anonymous, unknown or opted-out user) only the page/query vector is available: it
  may match interest words (contextual targeting); segments and look-alikes never match.
* Exclusions: ads for items the user already bought (when ``exclude_purchased``), and campaigns whose negative
  keyword occurs in the query (case-insensitive substring, which also works for unsegmented Chinese).
* Block lists of the request (``AdRequest.block_domains`` / ``block_categories``; OpenRTB ``badv`` / ``bcat``):
  a campaign is blocked when its advertiser's domain is listed (exact, case-insensitive); an ad when any level of
  its product's category path (``products.category``, e.g. ``["运动", "篮球"]``) is listed (exact string). The store
  keeps no IAB taxonomy, so ``bcat`` entries are matched against those category names: an exchange's IAB codes
  block nothing unless the catalogue's categories are IAB codes. Being filters, blocks act before the auction, so
  the best eligible ad wins in a blocked ad's place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from adpilot.deliver.snapshot import CampaignTable, Snapshot


@dataclass(frozen=True)
class LocalClock:
    """The request time in each campaign time zone of the snapshot (row = time zone)."""

    now: float
    hour: np.ndarray  # (n_tz,) int
    day: tuple[str, ...]  # local date, ISO
    day_fraction: np.ndarray  # (n_tz,) float in [0, 1)
    second: int  # the whole second of ``now`` the calendar fields belong to (as datetime rounds ``now``)
    zones: tuple[ZoneInfo, ...]  # the time zones they were computed for
    base: np.ndarray  # (n_tz,) int: seconds of the local day at ``second``

    @classmethod
    def at(cls, campaigns: CampaignTable, now: float, previous: LocalClock | None = None) -> LocalClock:
        """The clock at ``now``. A ``previous`` clock of the same second and time zones lends its calendar: offsets
        change only on whole seconds, so hour and day are the same and the day fraction is that second's plus the
        microseconds, rounded as ``datetime.fromtimestamp`` rounds them — equal to computing it afresh, without a
        time-zone conversion per zone per request."""
        second = math.floor(now)
        micro = round((now - second) * 1e6)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        if previous is not None and previous.second == second and previous.zones is campaigns.timezones:
            hour, day, base = previous.hour, previous.day, previous.base
        else:
            hours, days, bases = [], [], []
            for tz in campaigns.timezones:
                local = datetime.fromtimestamp(second, tz)
                hours.append(local.hour)
                days.append(local.date().isoformat())
                bases.append(local.hour * 3600 + local.minute * 60 + local.second)
            hour, day, base = np.asarray(hours, dtype=np.int64), tuple(days), np.asarray(bases, dtype=np.int64)
            hour.flags.writeable = base.flags.writeable = False  # shared by the clocks of this second
        return cls(now, hour, day, (base + micro / 1e6) / 86400.0, second, campaigns.timezones, base)


def audience_matches(snapshot: Snapshot, user_row: int, personalised: bool, user_vector: np.ndarray | None,
                     context_vector: np.ndarray | None) -> np.ndarray:
    """Campaign rows whose audience rules this request matches (see module docstring), sorted, unique."""
    c = snapshot.campaigns
    found: list[np.ndarray] = []
    probe = user_vector if user_vector is not None else context_vector
    words, camps, thresholds = c.interest_pairs
    if probe is not None and len(words):
        sims = c.interest_vectors @ probe
        found.append(camps[sims[words] >= thresholds])
    if personalised and user_row >= 0:
        la_rows, centroids, la_thr = c.lookalike
        if user_vector is not None and len(la_rows):
            found.append(la_rows[centroids @ user_vector >= la_thr])
        seg = snapshot.users.segment[user_row]
        if seg is not None and seg in c.segment_members:
            found.append(c.segment_members[seg])
        if user_row in c.seed_members:
            found.append(c.seed_members[user_row])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def _member(rows: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


FILTERS = ("schedule", "geo", "device", "hour", "audience", "purchased", "negative_keyword", "slot",
           "blocked_domain", "blocked_category")


def targeting_filters(snapshot: Snapshot, ads: np.ndarray, clock: LocalClock, *, slot: str, geo: str | None,
                      device: str | None, query: str | None, user_row: int, personalised: bool,
                      matched: np.ndarray, block_domains: Sequence[str] = (),
                      block_categories: Sequence[str] = ()) -> dict[str, np.ndarray | None]:
    """One mask per filter in :data:`FILTERS` (``True`` = passes) over candidate ad rows ``ads``; ``None`` for a
    filter that cannot remove any of them (no campaign of the snapshot uses it, or the request does not trigger
    it), so that the decision path neither computes nor combines an all-``True`` mask."""
    c = snapshot.campaigns
    camp = snapshot.ads.campaign[ads]
    masks: dict[str, np.ndarray | None] = {
        "schedule": (c.start[camp] <= clock.now) & (clock.now < c.end[camp]) if c.any_schedule else None,
        "geo": c.geo.allows(geo, camp),
        "device": c.device.allows(device, camp),
        "hour": (c.hours_mask[camp] >> clock.hour[c.tz_row[camp]]) & 1 != 0 if c.any_hours else None,
        "audience": ~c.has_audience[camp] | _member(matched, len(c.ids))[camp] if c.any_audience else None,
        "purchased": None, "negative_keyword": None,
    }
    if personalised and user_row >= 0:
        u = snapshot.users
        bought = u.purchased[u.purchased_ptr[user_row]:u.purchased_ptr[user_row + 1]]
        if len(bought):
            bought_mask = _member(bought[bought >= 0], len(snapshot.product_ids))
            masks["purchased"] = ~(c.exclude_purchased[camp] & bought_mask[snapshot.ads.product_row[ads]])
    if query:
        text = query.lower()
        blocked = [rows for keyword, rows in c.negative_keywords if keyword in text]
        if blocked:
            masks["negative_keyword"] = ~_member(np.concatenate(blocked), len(c.ids))[camp]
    masks["slot"] = snapshot.ads.slot_ok.get(slot, snapshot.ads.any_slot_ok)[ads]
    masks["blocked_domain"] = _unlisted(c.domain_members, [d.strip().lower() for d in block_domains], camp)
    masks["blocked_category"] = _unlisted(snapshot.ads.category_members, block_categories, ads)
    return masks


def _unlisted(members: dict[str, np.ndarray], keys: Sequence[str], rows: np.ndarray) -> np.ndarray | None:
    """Which of ``rows`` belong to none of ``keys`` in ``members`` (key -> rows); ``None`` when no key is known."""
    found = [members[k] for k in keys if k in members]
    if not found:
        return None
    listed = np.concatenate(found)
    return ~_member(listed, int(max(listed.max(), rows.max(initial=-1))) + 1)[rows]
