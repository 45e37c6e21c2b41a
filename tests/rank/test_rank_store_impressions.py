"""The store's impressions, labelled for click models, agree with the same world read from its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from adpilot.config import Settings
from adpilot.datasets.world import WorldConfig, write_world
from adpilot.errors import UserError
from adpilot.rank.readers import store_impressions, world_impressions
from adpilot.store import Store
from adpilot.store.ingest import ingest_file


@pytest.fixture(scope="module")
def world_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("world")
    write_world(out, WorldConfig(n_users=300, n_events=30_000, seed=5))
    path = out / "store.duckdb"
    with Store(path) as store:
        for name in ("products", "ads", "events"):
            ingest_file(store, out / f"{name}.parquet", kind=name, settings=Settings(mode="test"))
    return out, path


def test_store_impressions_match_the_world_files(world_store: tuple[Path, Path]) -> None:
    world_dir, path = world_store
    with Store(path) as store:
        flagged = store.con.execute("SELECT count(*) FROM events WHERE bot_flag").fetchone()[0]
        frame = store_impressions(store.con, max_history=5)
        clean_users = set(store.con.execute(
            "SELECT user_id FROM events GROUP BY user_id HAVING NOT bool_or(bot_flag)").df()["user_id"])
    files = world_impressions(world_dir, max_history=5)
    assert len(frame) < len(files) if flagged else len(frame) == len(files)  # bot bursts are not shoppers
    assert frame["ts"].is_monotonic_increasing and (frame["conversion"] <= frame["click"]).all()
    key = ["ts", "ad_id", "creative_id"]
    both = frame[frame["user_id"].isin(clean_users)].merge(files, on=key, suffixes=("", "_w"))
    assert len(both) == frame["user_id"].isin(clean_users).sum() > 1000
    for column in ("click", "conversion", "item_id", "cate", "slot", "device", "hour"):
        assert (both[column] == both[f"{column}_w"]).all(), column
    assert (both["hist_item_id"].map(tuple) == both["hist_item_id_w"].map(tuple)).all()
    assert both["click"].sum() > 0 and both["hist_item_id"].map(len).max() == 5


def test_store_impressions_leave_out_flagged_users(world_store: tuple[Path, Path]) -> None:
    _, path = world_store
    with Store(path) as store:
        everyone = store_impressions(store.con)
        shown = everyone["user_id"].value_counts()
        bot = str(shown.index[0])
        store.con.execute("CREATE OR REPLACE TEMP TABLE anomalies AS SELECT 'user' AS entity_kind, ? AS entity, "
                          "TRUE AS flagged", [bot])
        without = store_impressions(store.con)
    assert len(without) == len(everyone) - shown.iloc[0] and bot not in set(without["user_id"])


def test_store_without_impressions_says_so(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store, pytest.raises(UserError, match="no ad impressions"):
        store_impressions(store.con)
