"""Quality checks against a small synthetic world, whose true interests are known."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from adpilot.datasets.world import WorldConfig, write_world
from adpilot.errors import InputFileError, UserError
from adpilot.store import Store
from adpilot.understand.adapter import LMAdapter
from adpilot.understand.anomalies import flag_users
from adpilot.understand.encoders import USEEncoder
from adpilot.understand.evaluate import (
    bot_flag_quality,
    hold_out_after,
    hold_out_last_items,
    interest_recovery,
    load_world_store,
    next_item_retrieval,
)
from adpilot.understand.items import build_product_vectors
from adpilot.understand.profiles import build_profiles
from adpilot.understand.retrieval import profile_item_scores, recent_rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, WorldConfig(n_users=400, n_events=12_000, seed=0))
    return out


def test_interest_vectors_beat_popularity_on_a_world(world: Path, tmp_path: Path, use_encoder: USEEncoder) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        load_world_store(world, store)
        held = hold_out_last_items(store)
        assert len(held) > 100 and held["user_id"].is_unique
        build_product_vectors(store, use_encoder)
        build_profiles(store, use_encoder)
        recovery = interest_recovery(store, world / "truth", "use", k=3)
        assert recovery["interest_vector"]["spearman"] > recovery["popularity"]["spearman"] + 0.1
        assert recovery["interest_vector"]["recall@3"] > recovery["popularity"]["recall@3"]
        retrieval = next_item_retrieval(store, held, "use", k=20, n_boot=200)
        recall = {name: retrieval[name]["recall"]["mean"] for name in ("interest_ann", "lm_profile", "popularity")}
        assert recall["interest_ann"] > recall["popularity"]
        assert recall["lm_profile"] > recall["interest_ann"]
        interval = retrieval["item_cf"]["recall"]
        assert 0 <= interval["low"] <= interval["mean"] <= interval["high"] <= 1


def test_time_split_leaves_cold_items_that_item_cf_cannot_reach(world: Path, tmp_path: Path,
                                                                  use_encoder: USEEncoder) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        load_world_store(world, store)
        last_before = store.con.sql("SELECT max(ts) FROM events WHERE type = 'page_view'").fetchall()[0][0]
        held = hold_out_after(store, test_days=5)
        assert held["user_id"].is_unique and len(held) > 50
        assert store.con.sql("SELECT max(ts) FROM events").fetchall()[0][0] < last_before - timedelta(days=4.9)
        seen = set(store.con.sql("SELECT DISTINCT item_id FROM events WHERE item_id IS NOT NULL").df()["item_id"])
        assert not set(held["item_id"]) <= seen  # some next items were launched after the cutoff
        ids = sorted(store.con.sql("SELECT product_id FROM products").df()["product_id"])
        build_product_vectors(store, use_encoder)
        build_profiles(store, use_encoder)
        adapter = LMAdapter(dim=16, hidden=32, steps=60, batch_size=256, n_negatives=128)
        retrieval = next_item_retrieval(store, held, "use", k=20, n_boot=200, adapter=adapter)
    assert retrieval["cold_test_users"] == sum(item not in seen for item in held["item_id"]) > 0
    assert retrieval["item_cf"]["recall_cold"]["mean"] == 0 == retrieval["popularity"]["recall_cold"]["mean"]
    for name in ("lm_hybrid", "lm_adapter", "lm_adapter_cf", "lm_adapter_cf_cold3"):
        assert retrieval[name]["recall_cold"]["n"] == retrieval["cold_test_users"]
    # fitted on the training part only: the held-out items nobody touched before the cut are not warm
    assert not adapter.warm_[[ids.index(item) for item in held["item_id"] if item not in seen]].any()
    assert retrieval["lm_adapter"]["recall"]["mean"] > retrieval["popularity"]["recall"]["mean"]
    assert retrieval["adapter_fit_cpu_seconds"] > 0 and len(retrieval["adapter_loss"]) == 10
    with pytest.raises(UserError, match="no item events"), Store(tmp_path / "empty.duckdb") as empty:
        hold_out_after(empty, test_days=1)


def test_world_loader_names_the_missing_file(tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store, pytest.raises(InputFileError, match="events.parquet is missing"):
        load_world_store(tmp_path, store)


def test_bot_flags_find_the_worlds_bots(world: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "w.duckdb") as store:
        load_world_store(world, store)
        quality = bot_flag_quality(flag_users(store), world / "truth")
    assert quality["bots"] >= 1
    assert quality["recall"] >= 0.9 and quality["precision"] >= 0.8


def test_profile_scores_keep_each_recent_interest() -> None:
    items = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], np.float32)
    # the mean of a tea item and a shoe item sits between them; the recent items keep both on top
    interest = (items[[0]] + items[[1]]) / np.sqrt(2)
    scores = profile_item_scores(interest, recent_rows([["p0", "p1"]], {"p0": 0, "p1": 1}, 5), items)
    assert set(np.argsort(-scores[0])[:2]) == {0, 1}
    assert np.argsort(-(interest @ items.T)[0])[0] == 3
    with pytest.raises(ValueError, match="`interest_weight` must be >= 0"):
        profile_item_scores(interest, np.empty((1, 0), np.int64), items, interest_weight=-1)
