"""A snapshot built from a real DuckDB store, with real e5 vectors: query retrieval, interest words, segments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from deliver_world import NOON, E5Encoder, fitted_scorer

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.snapshot import Snapshot
from adpilot.errors import UserError
from adpilot.schema import AdRequest
from adpilot.store.db import Store

PRODUCTS = {
    "p_ball": "耐克男子篮球鞋 高帮实战 缓震",
    "p_run": "亚瑟士女子缓震跑步鞋 轻便透气",
    "p_dress": "夏季碎花连衣裙 女 雪纺长裙",
    "p_phone": "小米14 5G智能手机 徕卡影像",
    "p_lip": "哑光口红 正红色 持久不脱色",
    "p_tea": "西湖龙井 明前绿茶 250克",
}
SETTINGS = Settings(mode="test", token_secret="deliver-test-secret-0123")


@pytest.fixture(scope="module")
def encoder() -> E5Encoder:
    return E5Encoder()


def build_store(encoder: E5Encoder, interest_threshold: float, path: str = ":memory:") -> Store:
    store = Store(path)
    con = store.con
    ids = list(PRODUCTS)
    vectors = encoder.encode([PRODUCTS[p] for p in ids], kind="passage")
    con.execute("CREATE TABLE product_vectors (product_id VARCHAR, encoder VARCHAR, vector FLOAT[])")
    rows = [(p, v.tolist()) for p, v in zip(ids, vectors, strict=True)]
    con.executemany("INSERT INTO product_vectors VALUES (?, 'e5', ?)", rows)
    con.execute("""CREATE TABLE profiles (user_id VARCHAR PRIMARY KEY, interest_vector FLOAT[], segment_id INTEGER,
                   keywords VARCHAR[], recent_items VARCHAR[], purchased_items VARCHAR[], n_events BIGINT,
                   last_ts TIMESTAMPTZ)""")
    con.execute("CREATE TABLE segments (segment_id INTEGER PRIMARY KEY, description VARCHAR, size BIGINT, "
                "centroid FLOAT[])")
    con.execute("INSERT INTO segments VALUES (7, '运动达人 · 男 · 中等价位', 1, NULL)")
    profiles = [("fan", vectors[ids.index("p_phone")], 3), ("runner", vectors[ids.index("p_run")], 7),
                ("stylist", vectors[ids.index("p_dress")], 3), ("optout", vectors[ids.index("p_run")], 7)]
    con.executemany("INSERT INTO profiles VALUES (?, ?, ?, [], [], [], 10, NULL)",
                    [(u, v.tolist(), s) for u, v, s in profiles])
    con.execute("INSERT INTO users (user_id, consent_personalisation) VALUES ('optout', false)")
    for p in ids:
        rules = {}
        if p == "p_phone":
            rules = {"interests": ["数码 电子产品"], "interest_threshold": interest_threshold}
        if p == "p_run":
            rules = {"segments": ["运动达人 · 男 · 中等价位"]}
        con.execute("INSERT INTO campaigns VALUES (?, 'adv', ?, 'active', 100, 10, NULL, NULL, 'Asia/Shanghai', "
                    "'manual_cpc', 1.0, NULL, NULL, NULL, ?)", [f"c_{p}", p, json.dumps(rules)])
        con.execute("INSERT INTO ads VALUES (?, ?, ?, NULL, 'active')", [f"a_{p}", f"c_{p}", p])
        con.execute("INSERT INTO creatives (creative_id, ad_id, text, slot, source, status) "
                    "VALUES (?, ?, ?, 'search', 'human', 'active')", [f"cr_{p}", f"a_{p}", PRODUCTS[p]])
    return store


def test_query_retrieval_interest_words_and_segments_with_real_vectors(encoder) -> None:
    words = encoder.encode(["数码 电子产品"], kind="query")[0]
    phone, dress = encoder.encode([PRODUCTS["p_phone"], PRODUCTS["p_dress"]], kind="passage")
    assert words @ phone > words @ dress  # the encoder understands the targeting words
    with build_store(encoder, float((words @ phone + words @ dress) / 2)) as store:
        snapshot = Snapshot.from_store(store, fitted_scorer(), encoder)
    eng = DecisionEngine(snapshot, settings=SETTINGS)

    calls = iter(range(100))

    def show(**kw) -> list[str]:
        d = eng.decide(AdRequest(request_id=f"r{next(calls)}", slot="search", ts=NOON, n_ads=6, **kw))
        return [a.ad_id for a in d.ads]

    assert show(query="篮球鞋")[0] == "a_p_ball"  # the query's meaning picks the ad
    assert show(query="绿茶 茶叶")[0] == "a_p_tea"
    assert "a_p_phone" in show(user_id="fan") and "a_p_phone" not in show(user_id="stylist")
    assert "a_p_run" in show(user_id="runner")  # segment named by its description
    assert "a_p_run" not in show(user_id="optout") and "a_p_run" not in show(user_id="stylist")
    assert show(user_id="fan")[0] == "a_p_phone"
    assert eng.decide(AdRequest(request_id="x", slot="home", ts=NOON)).no_fill_reason == "unknown slot 'home'"
    assert eng._queries.hits >= 0 and eng._queries.get("篮球鞋") is not None and eng._queries.hits >= 1


def test_store_without_understand_tables_is_a_clear_error(encoder) -> None:
    with Store(":memory:") as store, pytest.raises(UserError, match="product_vectors"):
        Snapshot.from_store(store, fitted_scorer(), encoder)


def test_bad_vectors_and_campaign_rows_are_named(encoder) -> None:
    with build_store(encoder, 0.8) as store:
        store.con.execute("INSERT INTO profiles VALUES ('short', [0.1, 0.2], 1, [], [], [], 1, NULL)")
        with pytest.raises(UserError, match="'short' has an interest_vector of length 2"):
            Snapshot.from_store(store, fitted_scorer(), encoder)
        store.con.execute("DELETE FROM profiles WHERE user_id = 'short'")
        store.con.execute("UPDATE campaigns SET timezone = 'Mars/Olympus' WHERE campaign_id = 'c_p_tea'")
        with pytest.raises(UserError, match="c_p_tea.*timezone"):
            Snapshot.from_store(store, fitted_scorer(), encoder)
        store.con.execute("UPDATE campaigns SET timezone = 'UTC', daily_budget = -1 WHERE campaign_id = 'c_p_tea'")
        with pytest.raises(UserError, match="campaign 'c_p_tea' is invalid"):
            Snapshot.from_store(store, fitted_scorer(), encoder)
    assert np.isfinite(encoder.encode(["x"]).sum())


def test_cli_decide_prints_the_decision_and_its_reasons(encoder, tmp_path) -> None:
    import os
    import subprocess
    import sys

    build_store(encoder, 0.8, str(tmp_path / "store.duckdb")).close()
    fitted_scorer().save(tmp_path / "scorer.json")
    env = {**os.environ, "ADPILOT_MODE": "test", "ADPILOT_ENCODER": "e5"}
    base = [sys.executable, "-m", "adpilot.cli", "deliver", "decide", "--store", str(tmp_path / "store.duckdb"),
            "--scorer", str(tmp_path / "scorer.json")]
    out = subprocess.run([*base, "--slot", "search", "--query", "篮球鞋", "--explain"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["ads"][0]["ad_id"] == "a_p_ball" and decision["explanation"]["retrieval"]["probes"] == ["context"]
    bad = subprocess.run([*base, "--slot", "search", "--n-ads", "50"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "`n_ads`" in bad.stderr and "Traceback" not in bad.stderr
