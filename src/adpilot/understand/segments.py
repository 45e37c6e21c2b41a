"""Segments: MiniBatchKMeans over interest vectors joined with a few behaviour features, described in words a
marketer reads ("运动/篮球 · 男 · 中等价位 · 夜间活跃").

``k`` is chosen by the mean silhouette on a seeded sample over ``k_range``: the k whose clusters are best
separated relative to their spread. The search is kept cheap so it scales to any number of users: the sample is
small (``sample`` rows, pairwise distances computed once and shared by every candidate), candidates are a
geometric grid of at most ``max_candidates`` values of k refined by the best one's two neighbours, each fitted
once (``n_init=1``), and BLAS/OpenMP pools are capped at ``threads``. Only the chosen k is fitted on every user.
Only users with an interest vector (consented, with some history) are segmented; the others keep ``segment_id``
NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from adpilot.errors import UserError, check_scalar
from adpilot.store import Store
from adpilot.understand.vectors import stored_unit_rows, to_list_array

BEHAVIOUR = ("log_events", "log_monetary", "log_recency", "night_share", "log_price")
PRICE_WORDS = {"low": "低价位", "mid": "中等价位", "high": "高价位"}
GENDER_WORDS = {"m": "男", "f": "女"}

_FEATURES_SQL = """
SELECT p.user_id, p.interest_vector, ln(1 + p.n_events) AS log_events, ln(1 + p.monetary) AS log_monetary,
  ln(1 + coalesce(p.recency_days, 0)) AS log_recency, coalesce(p.night_share, 0) AS night_share,
  ln(1 + coalesce(p.avg_price, 0)) AS log_price, p.top_categories[1] AS category, p.price_band, u.gender
FROM profiles p LEFT JOIN users u USING (user_id) WHERE p.interest_vector IS NOT NULL ORDER BY p.user_id
"""


@dataclass(frozen=True)
class SegmentResult:
    k: int
    silhouettes: dict[int, float]
    table: pd.DataFrame  # segment_id, description, size


def build_segments(store: Store, k_range: tuple[int, int] = (4, 16), behaviour_weight: float = 0.5,
                   sample: int = 2000, max_candidates: int = 6, threads: int = 2,
                   random_state: int = 0) -> SegmentResult:
    """Cluster profiled users, write ``segments`` and ``profiles.segment_id``; returns k, scores and the table."""
    from sklearn.cluster import MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    check_scalar(behaviour_weight, "behaviour_weight", ge=0)
    check_scalar(sample, "sample", ge=10)
    check_scalar(max_candidates, "max_candidates", ge=2)
    check_scalar(threads, "threads", ge=1)
    lo, hi = k_range
    check_scalar(lo, "k_range[0]", ge=2)
    check_scalar(hi, "k_range[1]", ge=lo)
    table = store.con.sql(_FEATURES_SQL).to_arrow_table()
    if table.num_rows < lo + 1:
        raise UserError(f"{table.num_rows} users have an interest vector; segments need at least {lo + 1}: "
                        "build profiles on more events first")
    vectors = stored_unit_rows(table.column("interest_vector"))
    frame = table.drop(["interest_vector"]).to_pandas()
    behaviour = frame[list(BEHAVIOUR)].to_numpy(np.float32)
    behaviour = (behaviour - behaviour.mean(0)) / (behaviour.std(0) + 1e-6)
    # each block carries comparable total variance: unit vectors have sum of variances <= 1
    features = np.hstack([vectors, behaviour * behaviour_weight / np.sqrt(len(BEHAVIOUR))])
    with threadpool_limits(threads):
        scores = silhouette_by_k(features, lo, hi, sample, max_candidates, random_state)
        best = max(scores, key=lambda k: scores[k])
        labels = MiniBatchKMeans(best, random_state=random_state, n_init=3, batch_size=4096).fit_predict(features)
    frame["segment_id"] = labels
    described = describe(frame, vectors)
    _write(store, frame, described)
    return SegmentResult(best, scores, described.drop(columns=["centroid"]))


def k_candidates(lo: int, hi: int, most: int) -> list[int]:
    """At most ``most`` values of k spread geometrically over [lo, hi] (silhouette changes by ratio of k).

    >>> k_candidates(4, 16, 6)
    [4, 5, 7, 9, 12, 16]
    >>> k_candidates(2, 4, 6)
    [2, 3, 4]
    """
    return sorted({int(round(k)) for k in np.geomspace(lo, hi, min(most, hi - lo + 1))})


def silhouette_by_k(features: np.ndarray, lo: int, hi: int, sample: int, max_candidates: int,
                    random_state: int) -> dict[int, float]:
    """Mean silhouette on a seeded sample for a grid of k, then for the best one's untried neighbours."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import pairwise_distances, silhouette_score

    rng = np.random.default_rng(random_state)
    probe = features[rng.choice(len(features), size=min(sample, len(features)), replace=False)]
    distances = pairwise_distances(probe)
    hi = min(hi, len(probe) - 1)
    scores: dict[int, float] = {}

    def score(k: int) -> None:
        labels = MiniBatchKMeans(k, random_state=random_state, n_init=1, batch_size=1024).fit_predict(probe)
        # a fit may leave clusters empty; one non-empty cluster has no silhouette
        scores[k] = float(silhouette_score(distances, labels, metric="precomputed")) \
            if len(np.unique(labels)) > 1 else -1.0

    for k in k_candidates(lo, hi, max_candidates):
        score(k)
    best = max(scores, key=lambda k: scores[k])
    for k in (best - 1, best + 1):
        if lo <= k <= hi and k not in scores:
            score(k)
    return dict(sorted(scores.items()))


def describe(frame: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    """One row per segment: id, words, size, and the normalised mean interest vector (centroid).

    >>> f = pd.DataFrame({"segment_id": [0, 0], "category": ["运动/篮球", "运动/篮球"], "gender": ["m", "f"],
    ...                   "price_band": ["mid", "mid"], "night_share": [0.5, 0.4]})
    >>> describe(f, np.eye(2, dtype=np.float32)).description[0]
    '运动/篮球 · 男女 · 中等价位 · 夜间活跃'
    """
    rows = []
    for segment, group in frame.groupby("segment_id"):
        words = [_mode(group["category"]) or "综合"]
        genders = group["gender"].dropna()
        share_m = (genders == "m").mean() if len(genders) else 0.5
        words.append("男" if share_m >= 0.65 else "女" if share_m <= 0.35 else "男女")
        words.append(PRICE_WORDS.get(_mode(group["price_band"]) or "", "价位不限"))
        words.append("夜间活跃" if group["night_share"].mean() >= 0.35 else "日间活跃")
        centroid = vectors[group.index.to_numpy()].mean(0)
        rows.append({"segment_id": int(segment), "description": " · ".join(words), "size": len(group),
                     "centroid": centroid / (np.linalg.norm(centroid) or 1.0)})
    return pd.DataFrame(rows)


def _mode(values: pd.Series) -> str | None:
    values = values.dropna()
    return str(values.mode().iloc[0]) if len(values) else None


def _write(store: Store, frame: pd.DataFrame, described: pd.DataFrame) -> None:
    con = store.con
    seg = pa.table({"segment_id": pa.array(described["segment_id"], pa.int32()),  # noqa: F841
                    "description": pa.array(described["description"], pa.string()),
                    "size": pa.array(described["size"], pa.int64()),
                    "centroid": to_list_array(np.stack(described["centroid"].to_list()))})
    assignment = pa.table({"user_id": pa.array(frame["user_id"], pa.string()),  # noqa: F841
                           "segment_id": pa.array(frame["segment_id"], pa.int32())})
    con.execute("CREATE TABLE IF NOT EXISTS segments (segment_id INTEGER PRIMARY KEY, description VARCHAR, "
                "size BIGINT, centroid FLOAT[])")
    con.execute("DELETE FROM segments")
    con.execute("INSERT INTO segments SELECT * FROM seg")
    con.execute("UPDATE profiles SET segment_id = NULL")
    con.execute("UPDATE profiles SET segment_id = a.segment_id FROM assignment a WHERE a.user_id = profiles.user_id")
