"""A model trained on `adpilot train export` scores live requests on exactly the inputs it was trained on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adpilot.config import Settings
from adpilot.datasets.world import WorldConfig, write_world
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.scorer import load_scorer
from adpilot.deliver.snapshot import Snapshot
from adpilot.errors import UserError
from adpilot.rank.estimator import CTRModel
from adpilot.rank.store_export import SERVED_COLUMNS, export_training
from adpilot.schema import AdRequest
from adpilot.store import Store
from adpilot.store.ingest import ingest_file
from adpilot.understand.items import build_product_vectors, load_product_vectors
from adpilot.understand.profiles import build_profiles
from adpilot.understand.registry import get_encoder
from adpilot.understand.vectors import unit_rows

SETTINGS = Settings(mode="test", encoder="use", encoder_threads=1, token_secret="rank-export-secret-0123456")
FILES = ("products", "users", "advertisers", "campaigns", "ads", "creatives", "events")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("shop")
    write_world(out / "world", WorldConfig(n_users=400, n_events=40_000, n_days=10, seed=3))
    path = out / "store.duckdb"
    with Store(path) as store:
        for name in FILES:
            ingest_file(store, out / "world" / f"{name}.parquet", kind=name, settings=SETTINGS)
        encoder = get_encoder("use", SETTINGS)
        build_product_vectors(store, encoder)
        build_profiles(store, encoder)
    return out, path


def test_export_splits_by_time_with_the_served_columns(shop: tuple[Path, Path]) -> None:
    out, path = shop
    with Store(path) as store:
        written = export_training(store, out / "export", "use", test_days=2)
        n_imps = store.con.execute("SELECT count(*) FROM events WHERE type = 'ad_impression' AND NOT bot_flag"
                                   ).fetchone()[0]
    train, test = (pd.read_parquet(out / "export" / f"{n}.parquet") for n in ("train", "test"))
    assert written == {"train": len(train), "test": len(test)} and 0 < len(test) < len(train)
    assert len(train) + len(test) <= n_imps
    assert list(train.columns) == [*SERVED_COLUMNS, "ad_vec", "hist_vec", "click", "conversion"]
    assert train["click"].sum() > 0 and train["campaign_id"].notna().all()
    with_history = train[train["hist_item_id"].map(len) > 0].iloc[0]
    with Store(path) as store:
        ids, vectors = load_product_vectors(store, "use")
    expected = vectors[pd.Index(ids).get_indexer(with_history["hist_item_id"])].mean(axis=0)
    assert np.allclose(with_history["hist_vec"], expected, atol=1e-6)
    with Store(path) as store, pytest.raises(UserError, match="test_days"):
        export_training(store, out / "bad", "use", test_days=-1)
    with Store(path) as store, pytest.raises(UserError, match="no `e5` product vectors"):
        export_training(store, out / "bad", "e5")


def test_engine_feeds_the_exported_model_its_training_inputs(shop: tuple[Path, Path]) -> None:
    out, path = shop
    with Store(path) as store:
        export_training(store, out / "served", "use")
    model = CTRModel("deepfm", labels=("click",), drop=("conversion",), epochs=1, batch_size=256,
                     hidden=(16,), seed=0).fit(out / "served" / "train.parquet")
    model_path = model.save(out / "deepfm.npz")
    with Store(path) as store:
        snapshot = Snapshot.from_store(store, load_scorer(model_path), get_encoder("use", SETTINGS))
        profile = store.con.execute(
            "SELECT user_id, interest_vector, recent_items FROM profiles WHERE len(recent_items) > 2 "
            "ORDER BY user_id LIMIT 1").fetchone()
        ids, vectors = load_product_vectors(store, "use")
        ads = store.con.execute("SELECT ad_id, campaign_id, product_id FROM ads").df().set_index("ad_id")
    when = datetime(2026, 1, 9, 13, 30, tzinfo=UTC)
    decision = DecisionEngine(snapshot, settings=SETTINGS).decide(AdRequest(
        request_id="r1", user_id=profile[0], slot="feed", device="mobile", ts=when, n_ads=3, explain=True))
    scored = decision.explanation["scored"]  # type: ignore[index]
    assert scored, decision.no_fill_reason
    rows = pd.DataFrame({
        "user_id": profile[0], "ad_id": [s["ad_id"] for s in scored],
        "campaign_id": [ads.loc[s["ad_id"], "campaign_id"] for s in scored],
        "item_id": [ads.loc[s["ad_id"], "product_id"] for s in scored], "slot": "feed", "device": "mobile",
        "hour": str(when.hour), "hist_item_id": [list(profile[2])] * len(scored),
        "ad_vec": [vectors[ids.index(ads.loc[s["ad_id"], "product_id"])] for s in scored],
        "hist_vec": [unit_rows(np.frombuffer(profile[1], np.int8)[None])[0]] * len(scored)})  # codes, served as unit
    offline = model.predict_proba(rows)[:, 1]
    assert np.allclose([s["pctr"] for s in scored], offline, atol=1e-6)
