"""A profile as a card a person reads: who (segment), what (interests), how (habits), and what was bought."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adpilot.errors import UserError
from adpilot.store import Store

_SQL = """
SELECT p.*, s.description AS segment FROM profiles p
LEFT JOIN (SELECT * FROM segments) s USING (segment_id) WHERE p.user_id = ? LIMIT 1
"""


def profile_card(store: Store, candidates: Sequence[str]) -> str:
    """The card of the first of ``candidates`` (e.g. pseudonymised id, then the id as given) with a profile."""
    store.con.execute("CREATE TABLE IF NOT EXISTS segments (segment_id INTEGER PRIMARY KEY, description VARCHAR, "
                      "size BIGINT, centroid FLOAT[])")
    for user in candidates:
        rows = store.con.sql(_SQL, params=[user]).df()
        if len(rows):
            return _format(rows.iloc[0].to_dict())
    raise UserError(f"no profile for user {candidates[-1]!r} (tried the raw id and its pseudonym)")


def _join(values: Any) -> str:
    return ", ".join(map(str, values)) if values is not None and len(values) else "-"


def _format(p: dict) -> str:
    interests = "(no consent)" if p["interest_vector"] is None else _join(p["keywords"])
    return "\n".join([
        f"user        {p['user_id']}",
        f"segment     {p['segment'] or '-'}",
        f"interests   {interests}",
        f"categories  {_join(p['top_categories'])}    brands {_join(p['top_brands'])}",
        f"activity    {p['n_events']} events, {p['n_sessions']} sessions, {p['active_days']} days; "
        f"last seen {p['recency_days']:.1f} days ago",
        f"purchases   {p['n_purchases']} for {p['monetary']:.2f} (RFM {p['rfm_r']}{p['rfm_f']}{p['rfm_m']}); "
        f"price band {p['price_band'] or '-'}",
        f"habits      {p['device'] or '-'} · {p['geo'] or '-'} · peak hour {p['peak_hour']} · "
        f"night share {p['night_share']:.0%}",
        f"recent      {_join(list(p['recent_items'])[-10:])}",
        f"bought      {_join(list(p['purchased_items'])[:10])}",
    ])
