"""The synthetic world: determinism, scale, schemas (against the real DuckDB store), and the truth oracle."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from adpilot.datasets.world import World, WorldConfig, day_counts, write_world
from adpilot.errors import UserError
from adpilot.schema import EVENT_ARROW_SCHEMA, PRODUCT_ARROW_SCHEMA, USER_ARROW_SCHEMA
from adpilot.store import Store

FILES = ("events", "products", "users", "advertisers", "campaigns", "ads", "creatives")
CONFIG = WorldConfig(n_users=1_500, n_events=60_000, seed=11, n_days=10)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, CONFIG, chunk_rows=4_000)
    return out


@pytest.fixture(scope="module")
def world(world_dir: Path) -> World:
    return World.load(world_dir)


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files_and_another_seed_differs(world_dir: Path, tmp_path: Path) -> None:
    write_world(tmp_path / "again", CONFIG, chunk_rows=4_000)
    assert _digest(tmp_path / "again") == _digest(world_dir)
    other = WorldConfig(n_users=1_500, n_events=60_000, seed=12, n_days=10)
    write_world(tmp_path / "other", other, chunk_rows=4_000)
    changed = {k for k, v in _digest(tmp_path / "other").items() if _digest(world_dir)[k] != v}
    assert {"events.parquet", "products.parquet", "users.parquet", "truth/users.parquet"} <= changed


def test_small_world_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    write_world(tmp_path, WorldConfig(n_users=2_000, n_events=50_000, seed=1))
    assert time.perf_counter() - start < 5.0


def test_files_match_the_shared_arrow_schemas(world_dir: Path) -> None:
    assert pq.read_schema(world_dir / "events.parquet").equals(EVENT_ARROW_SCHEMA)
    assert pq.read_schema(world_dir / "products.parquet").remove_metadata().equals(PRODUCT_ARROW_SCHEMA)
    assert pq.read_schema(world_dir / "users.parquet").remove_metadata().equals(USER_ARROW_SCHEMA)


def test_every_file_loads_into_the_store_tables(world_dir: Path) -> None:
    with Store(":memory:") as store:
        con = store.con.cursor()
        event_columns = {row[0] for row in con.execute("DESCRIBE events").fetchall()}
        assert set(EVENT_ARROW_SCHEMA.names) <= event_columns  # events enter through ingest, which adds keys
        for name in FILES[1:]:
            table = pq.read_table(world_dir / f"{name}.parquet")
            con.register("source", table)
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM source")
            con.unregister("source")
            assert store.count(name) == table.num_rows
        orphan_ads = con.execute(
            "SELECT count(*) FROM ads LEFT JOIN products USING (product_id) WHERE products.title IS NULL").fetchone()
        assert orphan_ads == (0,)
        targeting = con.execute("SELECT targeting->>'$.interests[0]' FROM campaigns LIMIT 1").fetchone()
        assert targeting is not None and targeting[0]


def test_event_counts_ids_and_order(world_dir: Path) -> None:
    events = pq.ParquetFile(world_dir / "events.parquet")
    table = events.read()
    assert table.num_rows == CONFIG.n_events
    assert pc.count_distinct(table["event_id"]).as_py() == table.num_rows
    for i in range(events.num_row_groups):
        ts = events.read_row_group(i, columns=["ts"])["ts"].to_numpy()
        assert (np.diff(ts.astype(np.int64)) >= 0).all()
    types = set(pc.unique(table["type"]).to_pylist())
    assert {"page_view", "search", "click", "add_to_cart", "purchase", "review", "ad_impression", "ad_click"} <= types
    reviews = table.filter(pc.equal(table["type"], "review"))
    assert pc.all(pc.is_valid(reviews["text"])).as_py() and pc.min(reviews["rating"]).as_py() >= 1
    searches = table.filter(pc.equal(table["type"], "search"))
    assert pc.all(pc.is_valid(searches["query"])).as_py()


def test_day_counts_sum_exactly() -> None:
    counts = day_counts(1_000_003, 30, 3)
    assert counts.sum() == 1_000_003 and counts.min() > 0


def test_cold_start_items_exist(world_dir: Path) -> None:
    events = pq.read_table(world_dir / "events.parquet", columns=["item_id", "ts"])
    truth = pq.read_table(world_dir / "truth" / "products.parquet")
    never = truth.filter(pc.greater_equal(truth["launch_day"], CONFIG.n_days))["product_id"]
    assert len(never) > 0
    assert not pc.any(pc.is_in(events["item_id"], never)).as_py()
    launch = dict(zip(truth["product_id"].to_pylist(), truth["launch_day"].to_pylist(), strict=True))
    frame = events.to_pandas().dropna()
    day = (frame["ts"] - CONFIG.start).dt.days
    assert (day >= frame["item_id"].map(launch)).all()
    assert (frame["item_id"].map(launch) > 0).any()  # late launches do show up, after their launch


def test_interests_are_recoverable_from_behaviour(world_dir: Path, world: World) -> None:
    events = pq.read_table(world_dir / "events.parquet", columns=["user_id", "type", "item_id"])
    views = events.filter(pc.equal(events["type"], "page_view")).to_pandas()
    leaf = dict(zip(world.catalog.ids.to_pylist(), world.catalog.leaf, strict=True))
    views["leaf"] = views["item_id"].map(leaf)
    counts = views.groupby(["user_id", "leaf"]).size().unstack(fill_value=0)
    counts = counts[counts.sum(axis=1) >= 10].reindex(columns=range(world.n_leaves), fill_value=0)
    truth = world.true_interests(counts.index.to_numpy())
    agreement = (counts.to_numpy().argmax(axis=1) == truth.argmax(axis=1)).mean()
    assert len(counts) > 50 and agreement > 0.5  # chance is about 1 / 31


def test_oracle_probabilities_are_valid_and_realistic(world: World) -> None:
    rng = np.random.default_rng(0)
    users = world.user_ids.take(rng.integers(0, world.population.n, 5_000))
    ads = world.ad_ids.take(rng.integers(0, len(world.ad_ids), 5_000))
    ctr = world.p_click(users, ads, hour=rng.integers(0, 24, 5_000), device="mobile", slot="item_related")
    cvr = world.p_convert(users, ads, device="desktop")
    assert ((ctr > 0) & (ctr < 1)).all() and ((cvr >= 0) & (cvr < 1)).all()
    assert 0.008 < ctr.mean() < 0.03
    assert 0.02 < np.average(cvr, weights=ctr) < 0.12


def test_matching_interests_click_more(world: World) -> None:
    interest = world.population.interest
    ad_leaf = world.catalog.leaf[world.market.ad_product]
    gaps = []
    for a in range(0, len(ad_leaf), 5):
        column = interest[:, ad_leaf[a]]
        fans = world.user_ids.take(np.argsort(-column)[:50])
        others = world.user_ids.take(np.argsort(column)[:50])
        ad = [world.ad_ids[a].as_py()]
        gaps.append(world.p_click(fans, ad).mean() - world.p_click(others, ad).mean())
    assert np.mean(np.array(gaps) > 0) > 0.95


def test_richer_copy_clicks_more(world: World) -> None:
    ad = world.ad_ids[0].as_py()
    product = world.market.ad_product[0]
    words = world.catalog.attr_words[product]
    lang = int(world.catalog.language[product])
    rich = " ".join(w[lang] for w in words) + (" 限时优惠" if lang == 0 else " on sale now")
    bland = "限时抢购，点击查看！" if lang == 0 else "Limited stock, tap to see!"
    users = world.user_ids.slice(0, 200)
    p_rich = world.p_click(users, [ad], creative_texts=rich)
    p_bland = world.p_click(users, [ad], creative_texts=bland)
    assert (p_rich > p_bland).mean() > 0.5 and p_rich.mean() > 1.3 * p_bland.mean()
    quality = world.creative_quality([rich, bland], [ad, ad])
    assert quality[0] > 0 > quality[1]
    assert np.allclose(world.p_click(users, [ad], creative_quality=quality[1]), p_bland)
    with pytest.raises(UserError, match="at most one"):
        world.p_click(users, [ad], creative_texts=rich, creative_quality=0.3)


def test_oracle_rejects_unknown_ids_and_bad_context(world: World) -> None:
    ad = world.ad_ids[0].as_py()
    with pytest.raises(UserError, match="user_ids"):
        world.p_click(["nobody"], [ad])
    with pytest.raises(UserError, match="slot"):
        world.p_click([world.user_ids[0].as_py()], [ad], slot="sidebar")
    with pytest.raises(UserError, match="hour"):
        world.p_click([world.user_ids[0].as_py()], [ad], hour=25)
    other_ad_creative = world.market.creatives["creative_id"][-1].as_py()
    with pytest.raises(UserError, match="creative_ids"):
        world.p_click([world.user_ids[0].as_py()], [ad], creative_ids=[other_ad_creative])


def test_load_rebuilds_the_same_oracle(world_dir: Path, world: World) -> None:
    fresh = World.generate(CONFIG)
    users = world.user_ids.slice(0, 100)
    assert np.array_equal(world.p_click(users, world.ad_ids.slice(0, 100)),
                          fresh.p_click(users, fresh.ad_ids.slice(0, 100)))
    truth = pq.read_table(world_dir / "truth" / "users.parquet")
    stored = np.stack(truth["interest"].to_numpy(zero_copy_only=False)[:100])
    assert np.allclose(stored, world.population.interest[:100])


def test_traffic_is_deterministic_and_well_formed(world: World) -> None:
    a = world.traffic(day=3, n_requests=2_000, seed=5)
    assert a.equals(world.traffic(day=3, n_requests=2_000, seed=5))
    assert not a.equals(world.traffic(day=3, n_requests=2_000, seed=6))
    assert set(pc.unique(a["slot"]).to_pylist()) <= {"home_banner", "search_top", "item_related", "feed"}
    search = a.filter(pc.equal(a["slot"], "search_top"))
    assert pc.all(pc.is_valid(search["query"])).as_py()
    p = world.p_click(a["user_id"], world.ad_ids.take(np.zeros(len(a), dtype=int)), hour=a["hour"].to_numpy(),
                      device=a["device"].to_numpy(zero_copy_only=False), slot=a["slot"].to_numpy(zero_copy_only=False))
    assert p.shape == (2_000,)
    with pytest.raises(UserError, match="day"):
        world.traffic(day=CONFIG.n_days, n_requests=1)


def test_top_interests_name_leaves(world: World) -> None:
    top = world.top_interests(world.user_ids.slice(0, 3), k=2)
    assert len(top) == 3 and all(len(t) == 2 and set(t) <= set(world.leaf_names) for t in top)


@pytest.mark.parametrize("kwargs", [{"n_users": 0}, {"n_events": -1}, {"n_days": 0}, {"n_products": 5}])
def test_bad_config_is_a_user_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(UserError):
        WorldConfig(**kwargs)


def test_load_without_world_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="world.json"):
        World.load(tmp_path)


def test_cli_writes_a_world(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "adpilot.cli", "world", "--out", str(tmp_path), "--users", "300",
           "--events", "3000", "--seed", "2"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pq.read_metadata(tmp_path / "events.parquet").num_rows == 3_000
    bad = subprocess.run(cli[:-1] + ["x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
