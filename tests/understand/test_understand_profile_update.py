"""Incremental profile updates at more than toy size: many chunks, rows in DuckDB's own order, several updates in a
row, consent, the oldest rows moved to the end — each equal to a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from understand_helpers import fill_store, products_frame

from adpilot.store import Store
from adpilot.understand import compaction, profiles
from adpilot.understand.encoders import USEEncoder
from adpilot.understand.interest import load_interest_vectors
from adpilot.understand.items import build_product_vectors
from adpilot.understand.profiles import build_profiles, update_profiles

LOCAL = timedelta(hours=8)  # profiles count days at UTC+8
TYPES = ["page_view", "page_view", "click", "add_to_cart", "purchase", "search", "review"]
COLUMNS = [c.split()[0] for c in profiles.PROFILE_TABLES["profiles"].split(",")]
FIRST_ROWS = "SELECT (SELECT min(rowid) FROM profiles), (SELECT min(rowid) FROM profile_affinity)"


def random_events(n: int, users: int, start: datetime, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kind = np.array(TYPES)[rng.integers(0, len(TYPES), n)]
    user = rng.integers(0, users, n)
    ts = [start + timedelta(seconds=int(m)) for m in rng.choice(3 * 86400, n, replace=False)]  # no ties
    return pd.DataFrame({
        "event_id": [f"e{seed}-{i}" for i in range(n)], "user_id": [f"u{u}" for u in user],
        "session_id": [f"s{u}-{(t + LOCAL).day}" for u, t in zip(user, ts, strict=True)], "ts": pd.to_datetime(ts, utc=True),
        "type": kind, "item_id": np.where(kind == "search", None, rng.choice(["p1", "p2", "p3", "p4", "p5", "p6",
                                                                             "gone"], n)),
        "price": None, "value": None, "query": np.where(kind == "search", rng.choice(["篮球鞋 男", "绿茶"], n), None),
        "text": np.where(kind == "review", "龙井茶 清香 很好喝", None),
        "device": rng.choice(["ios", "android"], n), "geo": rng.choice(["上海", "杭州"], n), "bot_flag": False})


def users(n: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "consent_personalisation": np.arange(n) % 7 != 0})


ANCHORED = ("interest_norm", "w_events", "w_value", "w_price", "w_logprice")  # sums anchored at the store's anchor


def table(store: Store) -> pd.DataFrame:
    """The profiles, anchored sums decayed to ``as_of`` (a rebuild and an update have different anchors)."""
    decay = "pow(2, date_diff('second', as_of, anchor) / 86400 / half_life_days)"
    columns = [f"{c} * {decay} AS {c}" if c in ANCHORED else c for c in COLUMNS]
    return store.con.sql(f"SELECT {', '.join(columns)} FROM profiles, profile_meta ORDER BY user_id").df()


@pytest.fixture()
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "CHUNK_USERS", 7)  # dozens of chunks, each in DuckDB's order


def test_several_updates_equal_a_rebuild(tmp_path, use_encoder: USEEncoder, small_chunks: None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 30)  # old stretches of 30 rows are moved, 40 a statement
    monkeypatch.setattr(compaction, "PIECE_ROWS", 40)
    t0 = datetime(2026, 3, 1, tzinfo=UTC) - LOCAL  # batches start at local midnights: no day spans two
    batches = [random_events(900, 150, t0, 0)] + [random_events(150, 150, t0 + timedelta(days=3 * k), k)
                                                   for k in (1, 2, 3)]
    everything = pd.concat(batches, ignore_index=True)
    with Store(tmp_path / "full.duckdb") as full, Store(tmp_path / "inc.duckdb") as inc:
        for store, events in ((full, everything), (inc, batches[0])):
            fill_store(store, products_frame(), events, users(150))
            build_product_vectors(store, use_encoder)
            build_profiles(store, use_encoder, half_life_days=2)
        for batch in batches[1:]:
            before = inc.con.sql(FIRST_ROWS).fetchall()[0]
            assert update_profiles(inc, use_encoder, events=batch.drop(columns=["bot_flag"])) \
                == batch["user_id"].nunique()
            after = inc.con.sql(FIRST_ROWS).fetchall()[0]
            assert after[0] > before[0] and after[1] > before[1]  # each table's oldest stretch was moved
        a, b = table(full), table(inc)
        assert len(a) == 150 and a["interest_vector"].notna().sum() < 150  # some users did not consent
        for column in (c for c in COLUMNS if c != "interest_vector"):  # no day spans batches: counts agree too
            for x, y in zip(a[column], b[column], strict=True):
                if isinstance(x, float) and not np.isnan(x):
                    # the stored vector sum is re-read from its 8-bit direction: its norm drifts a little
                    assert y == pytest.approx(x, rel=1e-3 if column == "interest_norm" else 1e-6), column
                elif isinstance(x, np.ndarray):  # a set of purchased items has no order
                    assert (sorted(x) == sorted(y)) if column == "purchased_items" else list(x) == list(y), column
                else:
                    assert (pd.isna(x) and pd.isna(y)) or x == y, column
        ua, va = load_interest_vectors(full)
        ub, vb = load_interest_vectors(inc)
        assert ua == ub and len(ua) > 100
        np.testing.assert_allclose(va, vb, atol=1 / 127)  # 8-bit directions (test_understand_vectors)
        assert np.einsum("ij,ij->i", va, vb).min() > 0.9999


def updated_once(tmp_path, use_encoder: USEEncoder, monkeypatch: pytest.MonkeyPatch) -> Store:
    """40 users' profiles built and updated once, with stretches of 8 rows: the next update moves old rows."""
    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 8)
    store = fill_store(Store(tmp_path / "s.duckdb"), products_frame(),
                       random_events(300, 40, datetime(2026, 3, 2, tzinfo=UTC), 5), users(40))
    build_product_vectors(store, use_encoder)
    build_profiles(store, use_encoder)
    update_profiles(store, use_encoder, events=random_events(100, 40, datetime(2026, 3, 5, tzinfo=UTC), 7)
                    .drop(columns=["bot_flag"]))
    return store


def test_a_failed_update_leaves_the_profiles_as_they_were(tmp_path, use_encoder: USEEncoder, small_chunks: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = updated_once(tmp_path, use_encoder, monkeypatch)  # the failing update is moving old rows too
    before, first = table(store), store.con.sql(FIRST_ROWS).fetchall()[0]
    write, calls = profiles._write_chunk, []

    def fail_on_third(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        write(*args, **kwargs)

    monkeypatch.setattr(profiles, "_write_chunk", fail_on_third)
    with pytest.raises(RuntimeError, match="disk full"):
        update_profiles(store, use_encoder, events=random_events(200, 40, datetime(2026, 3, 6, tzinfo=UTC), 6)
                        .drop(columns=["bot_flag"]))
    assert len(calls) == 3  # two chunks had been written when it failed
    pd.testing.assert_frame_equal(table(store), before)
    assert store.con.sql(FIRST_ROWS).fetchall()[0] == first  # nothing moved either
    assert store.con.sql("SELECT as_of FROM profile_meta").fetchall()[0][0] == before["last_ts"].max()
    store.close()


def test_withdrawn_consent_reaches_a_moved_row(tmp_path, use_encoder: USEEncoder, small_chunks: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store = updated_once(tmp_path, use_encoder, monkeypatch)
    batch = random_events(30, 40, datetime(2026, 3, 8, tzinfo=UTC), 8).drop(columns=["bot_flag"])
    oldest, old_row = store.con.sql("SELECT user_id, rowid FROM profiles WHERE interest_vector IS NOT NULL "
                                    "AND NOT list_contains(?, user_id) ORDER BY rowid LIMIT 1",
                                    params=[sorted(set(batch["user_id"]))]).fetchall()[0]
    store.con.execute("UPDATE users SET consent_personalisation = FALSE WHERE user_id = ?", [oldest])
    update_profiles(store, use_encoder, events=batch)
    moved = store.con.sql("SELECT rowid, interest_vector, keywords, n_events FROM profiles WHERE user_id = ?",
                          params=[oldest]).fetchall()
    assert len(moved) == 1 and moved[0][0] > old_row  # moved to the end, once
    assert moved[0][1] is None and moved[0][2] is None and moved[0][3] > 0  # interests gone, activity kept
    assert store.con.sql("SELECT count(*), count(DISTINCT user_id) FROM profiles").fetchall()[0] == (40, 40)
    store.close()
