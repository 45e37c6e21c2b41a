"""Bot and fraud flags: sources (users, IPs, devices) whose behaviour is implausible for a person.

Each source gets behaviour features (volume, the busiest minute, the median gap between events, fan-out over
devices/apps/places, ad clicks without an impression), is scored by an IsolationForest (unsupervised: fraud
has no labels at ingest time) and checked against plain rules. A source is flagged when a strong rule fires
(burst, fan-out, clicks without views) or when two weaker signs agree (no dwell, an isolation score in the top
``contamination`` share): a fast human alone, or an odd but slow one, is not a bot. Every source carries its
reasons, flagged or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adpilot.errors import check_scalar
from adpilot.store import Store

NUMERIC = ("n_events", "burst", "median_gap", "fanout", "blind_click_share")


def source_features(con, events_sql: str, fanout: Sequence[str]) -> pd.DataFrame:
    """Per-source features from a relation with ``source``, ``ts`` and a boolean ``blind_click`` column.

    ``burst`` is the most events in one clock minute; ``median_gap`` the median seconds between consecutive
    events (NULL below two events); ``fanout`` the largest distinct count over the ``fanout`` columns.
    """
    distinct = ", ".join(f"count(DISTINCT {c})" for c in fanout) or "1"
    return con.sql(f"""
        WITH e AS ({events_sql}),
        minutes AS (SELECT source, count(*) AS c FROM e GROUP BY source, date_trunc('minute', ts)),
        gaps AS (SELECT source, date_diff('millisecond', lag(ts) OVER (PARTITION BY source ORDER BY ts), ts) / 1000.0
                 AS gap FROM e)
        SELECT s.source, s.n_events, m.burst, coalesce(g.median_gap, -1) AS median_gap, s.fanout,
               s.blind_click_share
        FROM (SELECT source, count(*) AS n_events, greatest({distinct}) AS fanout,
                     avg(CAST(blind_click AS DOUBLE)) AS blind_click_share FROM e GROUP BY source) s
        JOIN (SELECT source, max(c) AS burst FROM minutes GROUP BY source) m USING (source)
        LEFT JOIN (SELECT source, median(gap) AS median_gap FROM gaps WHERE gap IS NOT NULL GROUP BY source) g
          USING (source)
        ORDER BY s.source""").df()


@dataclass
class AnomalyDetector:
    """Rules plus an IsolationForest over log features. Constructor = configuration; ``fit_flag`` learns."""

    contamination: float = 0.02
    burst_limit: int = 20
    min_gap_seconds: float = 1.0
    fanout_limit: int = 5
    blind_share_limit: float = 0.8
    min_events: int = 5
    random_state: int = 0
    strong: tuple[str, ...] = field(default=("burst", "fan_out", "clicks_without_views"))

    def fit_flag(self, features: pd.DataFrame) -> pd.DataFrame:
        """``features`` + ``score`` (higher = stranger), ``flagged`` and ``reasons`` (list of words)."""
        from sklearn.ensemble import IsolationForest

        check_scalar(self.contamination, "contamination", gt=0, lt=0.5)
        x = np.log1p(features[list(NUMERIC)].clip(lower=0).to_numpy(np.float64))
        model = IsolationForest(n_estimators=200, contamination=self.contamination, random_state=self.random_state)
        model.fit(x)
        self.model_ = model
        out = features.copy()
        out["score"] = -model.score_samples(x)
        outlier = model.predict(x) == -1
        busy = out["n_events"] >= self.min_events
        fired = {
            "burst": out["burst"] >= self.burst_limit,
            "no_dwell": busy & (out["median_gap"] >= 0) & (out["median_gap"] < self.min_gap_seconds),
            "fan_out": out["fanout"] >= self.fanout_limit,
            "clicks_without_views": busy & (out["blind_click_share"] >= self.blind_share_limit),
        }
        unknown = set(self.strong) - set(fired)
        if unknown:
            raise ValueError(f"`strong` must name rules among {sorted(fired)}, got {sorted(unknown)}")
        reasons: list[list[str]] = [[] for _ in range(len(out))]
        for name, hits in fired.items():
            for i in np.flatnonzero(hits.to_numpy()):
                reasons[i].append(name)
        for i in np.flatnonzero(outlier):
            reasons[i].append(f"isolation_score_top_{self.contamination:.0%}")
        out["reasons"] = reasons
        strong = set(self.strong)
        out["flagged"] = [len(r) >= 2 or bool(strong & set(r)) for r in reasons]
        return out


_STORE_EVENTS_SQL = """
SELECT e.user_id AS source, e.ts, e.device, e.geo,
  e.type = 'ad_click' AND NOT EXISTS (SELECT 1 FROM events i WHERE i.type = 'ad_impression'
    AND i.user_id = e.user_id AND i.ad_id = e.ad_id AND i.ts <= e.ts) AS blind_click
FROM events e
"""


def flag_users(store: Store, detector: AnomalyDetector | None = None) -> pd.DataFrame:
    """Score every user in the store and write ``anomalies(entity_kind, entity, score, flagged, reasons)``."""
    features = source_features(store.con, _STORE_EVENTS_SQL, ("device", "geo"))
    flagged = (detector or AnomalyDetector()).fit_flag(features) if len(features) else features.assign(
        score=[], flagged=[], reasons=[])
    rows = pd.DataFrame({"entity_kind": "user", "entity": flagged["source"], "score": flagged["score"],  # noqa: F841
                         "flagged": flagged["flagged"], "reasons": flagged["reasons"]})
    store.con.execute("CREATE TABLE IF NOT EXISTS anomalies (entity_kind VARCHAR, entity VARCHAR, score DOUBLE, "
                      "flagged BOOLEAN, reasons VARCHAR[])")
    store.con.execute("DELETE FROM anomalies WHERE entity_kind = 'user'")
    store.con.execute("INSERT INTO anomalies SELECT * FROM rows")
    return flagged
