"""Segments, look-alikes, bot flags and the CLI, on stores with planted structure."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from understand_helpers import event_rows, events_frame, fill_store, products_frame, users_frame

from adpilot.errors import UserError
from adpilot.store import Store
from adpilot.store.privacy import pseudonymise
from adpilot.understand.anomalies import AnomalyDetector, flag_users
from adpilot.understand.anomaly_eval import evaluate_talkingdata
from adpilot.understand.encoders import USEEncoder
from adpilot.understand.items import build_product_vectors
from adpilot.understand.lookalike import LookalikeIndex, lookalike
from adpilot.understand.profiles import build_profiles
from adpilot.understand.segments import build_segments

T0 = datetime(2026, 3, 1, 2, tzinfo=UTC)


def two_taste_store(path: Path, encoder: USEEncoder, per_taste: int = 12) -> Store:
    """``per_taste`` basketball fans (men, night) and as many tea drinkers (women, day)."""
    rows, users = [], []
    rng = np.random.default_rng(0)
    for taste, items, gender, hour in (("ball", ["p1", "p2", "p3"], "m", 14), ("tea", ["p4", "p5", "p6"], "f", 2)):
        for i in range(per_taste):
            user = f"{taste}{i}"
            picks = list(rng.choice(items, size=4))
            rows += event_rows(user, picks, T0 + timedelta(hours=hour, days=int(i % 3)))
            users.append({"user_id": user, "gender": gender, "age_band": None, "geo": None,
                          "consent_personalisation": True, "consent_ads": True})
    events = pd.DataFrame(rows)
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    store = fill_store(Store(path), products_frame(), events, pd.DataFrame(users))
    build_product_vectors(store, encoder)
    build_profiles(store, encoder)
    return store


def test_segments_separate_tastes_and_describe_them(tmp_path: Path, use_encoder: USEEncoder) -> None:
    with two_taste_store(tmp_path / "s.duckdb", use_encoder) as store:
        result = build_segments(store, k_range=(2, 4), random_state=0)
        assert result.k == 2
        described = set(result.table["description"])
        assert described == {"运动/篮球 · 男 · 高价位 · 夜间活跃", "食品/茶叶 · 女 · 中等价位 · 日间活跃"} or \
            {d.split(" · ")[0] for d in described} == {"运动/篮球", "食品/茶叶"}
        by_user = dict(store.con.sql("SELECT user_id, segment_id FROM profiles").fetchall())
        assert len({by_user[f"ball{i}"] for i in range(12)}) == 1
        assert by_user["ball0"] != by_user["tea0"]
        with pytest.raises(ValueError, match="`k_range\\[1\\]` must be >= 3"):
            build_segments(store, k_range=(3, 2))


def test_lookalikes_share_the_seeds_taste(tmp_path: Path, use_encoder: USEEncoder) -> None:
    with two_taste_store(tmp_path / "s.duckdb", use_encoder) as store:
        found = lookalike(store, ["ball0", "ball1"], n=5, threshold=0.0)
        assert len(found) == 5 and all(u.startswith("ball") for u in found["user_id"])
        assert not {"ball0", "ball1"} & set(found["user_id"])
        assert (np.diff(found["similarity"]) <= 1e-6).all()
        assert lookalike(store, ["ball0"], n=50, threshold=0.999)["similarity"].min() >= 0.999
        with pytest.raises(UserError, match="none of the seed users"):
            lookalike(store, ["nobody"], n=5)


def test_ivf_and_flat_agree_on_clear_neighbours() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    ids = [f"u{i}" for i in range(3000)]
    flat = LookalikeIndex(ann_above=10_000).fit(ids, vectors).query(["u0"], n=10)
    ivf = LookalikeIndex(ann_above=100, nlist=16, nprobe=8).fit(ids, vectors).query(["u0"], n=10)
    assert len(set(flat["user_id"]) & set(ivf["user_id"])) >= 8


def test_bot_with_burst_and_blind_clicks_is_flagged_with_reasons(small_store: Store) -> None:
    bot = [{"event_id": f"bot-{i}", "user_id": "u_bot", "session_id": None,
            "ts": T0 + timedelta(milliseconds=300 * i), "type": "ad_click", "item_id": None, "ad_id": "a1",
            "device": f"dev{i % 9}", "geo": "上海"} for i in range(60)]
    humans = []
    for u in range(40):
        humans += event_rows(f"h{u}", ["p1", "p4", "p2"], T0 + timedelta(hours=u, minutes=u))
    frame = pd.DataFrame(bot + humans)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    fill_store(small_store, products_frame().iloc[:0], frame, users_frame().iloc[:0])
    flagged = flag_users(small_store, AnomalyDetector(contamination=0.05)).set_index("source")
    reasons = flagged.loc["u_bot", "reasons"]
    assert {"burst", "no_dwell", "fan_out", "clicks_without_views"} <= set(reasons)
    assert flagged.loc["u_bot", "score"] == flagged["score"].max()
    assert not flagged.loc["h3", "flagged"]
    assert small_store.con.sql("SELECT count(*) FROM anomalies WHERE flagged").fetchall()[0][0] >= 1


@pytest.mark.shared_data
def test_flagged_talkingdata_ips_convert_less(shared_data: Path) -> None:
    result = evaluate_talkingdata(shared_data / "talkingdata_adtracking" / "clicks.csv")
    assert result["flagged"]["cvr"]["upper"] < result["unflagged"]["cvr"]["lower"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adpilot.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "ADPILOT_MODE": "test", "ADPILOT_ENCODER_THREADS": "1"})


def test_cli_build_show_and_lookalike(tmp_path: Path) -> None:
    secret = "adpilot-dev-secret-change-me"
    events = events_frame()
    events["user_id"] = events["user_id"].map(lambda u: pseudonymise(u, secret))
    users = users_frame()
    users["user_id"] = users["user_id"].map(lambda u: pseudonymise(u, secret))
    path = tmp_path / "cli.duckdb"
    fill_store(Store(path), products_frame(), events, users).close()
    built = run_cli("profile", "build", "--store", str(path), "--encoder", "use")
    assert built.returncode == 0, built.stderr
    assert "6 product vectors (use), 3 profiles" in built.stdout
    card = run_cli("profile", "show", "u_ball", "--store", str(path))
    assert card.returncode == 0, card.stderr
    assert "篮球鞋" in card.stdout and "运动/篮球" in card.stdout
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(pseudonymise("u_ball", secret) + "\n")
    found = run_cli("audience", "lookalike", "--seed-file", str(seeds), "--n", "5", "--threshold", "-1",
                    "--store", str(path))
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("user_id,similarity") and pseudonymise("u_tea", secret) in found.stdout
    missing = run_cli("profile", "show", "nobody", "--store", str(path))
    assert missing.returncode == 2 and "no profile for user 'nobody'" in missing.stderr
    assert "Traceback" not in missing.stderr
