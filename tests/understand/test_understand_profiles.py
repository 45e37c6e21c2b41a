"""Profiles: what a build says about the hand-made users, consent, and incremental updates equal a rebuild."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from understand_helpers import events_frame, fill_store, products_frame, users_frame

from adpilot.errors import UserError
from adpilot.store import Store
from adpilot.understand.encoders import USEEncoder
from adpilot.understand.interest import load_interest_vectors
from adpilot.understand.items import (
    build_product_vectors,
    load_ad_vectors,
    load_product_vectors,
    product_text,
)
from adpilot.understand.profiles import build_profiles, ensure_profile_tables, update_profiles


def built(store: Store, encoder: USEEncoder) -> Store:
    build_product_vectors(store, encoder)
    build_profiles(store, encoder, half_life_days=7)
    return store


def row(store: Store, user: str) -> dict:
    return store.con.sql("SELECT * FROM profiles WHERE user_id = ?", params=[user]).df().iloc[0].to_dict()


def test_profile_reads_like_the_user(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    ball, tea = row(small_store, "u_ball"), row(small_store, "u_tea")
    assert list(ball["top_categories"])[0] == "运动/篮球"
    assert "篮球鞋" in list(ball["keywords"])
    assert list(tea["top_categories"])[0] == "食品/茶叶"
    assert list(ball["purchased_items"]) == ["p1"] and ball["n_purchases"] == 1 and ball["monetary"] == 499.0
    assert list(ball["recent_items"])[-1] == "p1" and ball["device"] == "ios" and tea["geo"] == "杭州"
    assert ball["peak_hour"] == 21  # 13:00 UTC is 21:00 in Shanghai
    assert ball["price_band"] == "high" and tea["n_events"] == 5


def test_interest_vector_points_at_the_users_products(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    users, vectors = load_interest_vectors(small_store)
    ids, items = load_product_vectors(small_store, "use")
    scores = dict(zip(users, vectors @ items.T, strict=True))
    ball_items = {ids[i] for i in np.argsort(-scores["u_ball"])[:3]}
    tea_items = {ids[i] for i in np.argsort(-scores["u_tea"])[:3]}
    assert ball_items == {"p1", "p2", "p3"}
    assert tea_items == {"p4", "p5", "p6"}


def test_no_consent_means_no_interest_signal(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    private = row(small_store, "u_private")
    assert private["interest_vector"] is None and private["keywords"] is None
    assert private["n_events"] == 2  # activity is still counted
    assert "u_private" not in load_interest_vectors(small_store)[0]


def test_incremental_update_equals_rebuild(tmp_path, use_encoder: USEEncoder) -> None:
    events = events_frame().sort_values("ts")
    cut = events["ts"].quantile(0.5)
    old, new = events[events["ts"] <= cut], events[events["ts"] > cut]
    with Store(tmp_path / "full.duckdb") as full, Store(tmp_path / "inc.duckdb") as inc:
        built(fill_store(full, products_frame(), events, users_frame()), use_encoder)
        built(fill_store(inc, products_frame(), old, users_frame()), use_encoder)
        touched = update_profiles(inc, use_encoder, events=new.drop(columns=["bot_flag"]))
        assert touched == new["user_id"].nunique()
        columns = "user_id, n_events, n_purchases, monetary, last_ts, decayed_events, top_categories, " \
                  "top_brands, keywords, device, geo, peak_hour, night_share, recent_items, purchased_items, " \
                  "avg_price, rfm_m"
        a = full.con.sql(f"SELECT {columns} FROM profiles ORDER BY user_id").fetchall()
        b = inc.con.sql(f"SELECT {columns} FROM profiles ORDER BY user_id").fetchall()
        for row_a, row_b in zip(a, b, strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                assert x == (pytest.approx(y, rel=1e-6) if isinstance(y, float) else y)
        decayed = ("SELECT user_id, kind, key, weight * pow(2, date_diff('second', as_of, anchor) / 86400 / "
                   "half_life_days) FROM (SELECT user_id, unnest(key_ids) AS key_id, unnest(weights) AS weight "
                   "FROM profile_affinity) JOIN profile_keys USING (key_id), profile_meta ORDER BY ALL")
        assert len(full.con.sql(decayed).fetchall()) > 20  # categories, brands, keywords, device, geo, hours
        for row_a, row_b in zip(full.con.sql(decayed).fetchall(), inc.con.sql(decayed).fetchall(), strict=True):
            assert row_a[:3] == row_b[:3] and row_a[3] == pytest.approx(row_b[3], rel=1e-6)
        ua, va = load_interest_vectors(full)
        ub, vb = load_interest_vectors(inc)
        assert ua == ub
        np.testing.assert_allclose(va, vb, atol=1 / 127)  # 8-bit directions (test_understand_vectors)
        assert np.einsum("ij,ij->i", va, vb).min() > 0.9999


def test_update_needs_a_build_and_the_same_encoder(small_store: Store, use_encoder: USEEncoder) -> None:
    with pytest.raises(UserError, match="profile build"):
        update_profiles(small_store, use_encoder)
    built(small_store, use_encoder)
    assert update_profiles(small_store, use_encoder) == 0  # nothing newer than as_of
    other = USEEncoder()
    other.name = "use-other"
    with pytest.raises(UserError, match="built with encoder 'use'"):
        update_profiles(small_store, other)


def test_product_text_and_ad_vectors(small_store: Store, use_encoder: USEEncoder) -> None:
    build_product_vectors(small_store, use_encoder)
    small_store.con.execute("INSERT INTO ads (ad_id, campaign_id, product_id) VALUES ('a1', 'c1', 'p4')")
    ads, vectors = load_ad_vectors(small_store, "use")
    ids, items = load_product_vectors(small_store, "use")
    assert ads == ["a1"]
    np.testing.assert_array_equal(vectors[0], items[ids.index("p4")])
    text = product_text(products_frame().iloc[0].to_dict())
    assert text.startswith("李宁 气垫篮球鞋 男款。品牌：李宁。类目：运动 > 篮球 > 篮球鞋。产地：中国。")


def test_withdrawn_consent_clears_interests_on_update(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    assert row(small_store, "u_ball")["interest_vector"] is not None
    small_store.con.execute("UPDATE users SET consent_personalisation = FALSE WHERE user_id = 'u_ball'")
    late = events_frame().iloc[:1].assign(event_id="late", ts=pd.Timestamp("2026-03-02", tz="UTC"))
    update_profiles(small_store, use_encoder, events=late.drop(columns=["bot_flag"]))
    ball = row(small_store, "u_ball")
    assert ball["interest_vector"] is None and ball["keywords"] is None and ball["top_categories"] is None
    assert ball["n_events"] == 7


def test_withdrawn_consent_clears_untouched_users_too(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    small_store.con.execute("UPDATE users SET consent_personalisation = FALSE WHERE user_id = 'u_tea'")
    late = events_frame().iloc[:1].assign(event_id="late", ts=pd.Timestamp("2026-03-02", tz="UTC"))
    assert update_profiles(small_store, use_encoder, events=late.drop(columns=["bot_flag"])) == 1  # u_ball only
    tea = row(small_store, "u_tea")
    assert tea["interest_vector"] is None and tea["keywords"] is None and tea["top_brands"] is None
    kinds = small_store.con.sql("SELECT DISTINCT kind FROM (SELECT unnest(key_ids) AS key_id FROM profile_affinity "
                                "WHERE user_id = 'u_tea') JOIN profile_keys USING (key_id) ORDER BY kind").fetchall()
    assert [k for (k,) in kinds] == ["device", "geo", "hour"]


def as_floats(store: Store, sql_type: str) -> None:
    """Store the profiles' interest vectors as unit float32 rows of ``sql_type``, as adpilot did before codes."""
    users, vectors = load_interest_vectors(store)
    store.con.execute(f"ALTER TABLE profiles ADD COLUMN unit {sql_type}")
    store.con.register("units", pa.table({"user_id": users, "unit": list(vectors)}))
    store.con.execute("UPDATE profiles SET unit = units.unit FROM units WHERE units.user_id = profiles.user_id")
    store.con.execute("ALTER TABLE profiles DROP COLUMN interest_vector")
    store.con.execute("ALTER TABLE profiles RENAME COLUMN unit TO interest_vector")


def test_vectors_are_int8_blobs_and_list_layouts_ask_for_a_rebuild(small_store: Store,
                                                                   use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    kind = small_store.con.sql("SELECT column_type FROM (DESCRIBE profiles) WHERE column_name = 'interest_vector'")
    assert kind.fetchall() == [("BLOB",)]
    lengths = small_store.con.sql("SELECT DISTINCT octet_length(interest_vector) FROM profiles "
                                  "WHERE interest_vector IS NOT NULL").fetchall()
    assert lengths == [(use_encoder.dim,)]
    users, vectors = load_interest_vectors(small_store)
    assert users == sorted(users) and vectors.shape == (len(users), use_encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    as_floats(small_store, "FLOAT[]")  # the layout before ARRAYs
    assert load_interest_vectors(small_store)[0] == users  # readers still read it
    with pytest.raises(UserError, match="older adpilot"):
        update_profiles(small_store, use_encoder)


def test_float_vectors_are_converted_to_codes_in_row_order(small_store: Store, use_encoder: USEEncoder) -> None:
    built(small_store, use_encoder)
    codes = dict(small_store.con.sql("SELECT user_id, interest_vector FROM profiles").fetchall())
    as_floats(small_store, f"FLOAT[{use_encoder.dim}]")  # the layout before codes
    in_row_order = "SELECT user_id, interest_vector FROM profiles ORDER BY rowid"
    order = [user for user, _ in small_store.con.sql(in_row_order).fetchall()]
    ensure_profile_tables(small_store, use_encoder.dim)
    assert small_store.con.sql(in_row_order).fetchall() == [(user, codes[user]) for user in order]
    update_profiles(small_store, use_encoder)  # and the converted store updates
