"""Readers of the shared public data: shapes and values against each SOURCE.txt (skipped without the folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from adpilot.datasets.amazon import load_grocery, load_s3rec, sequence_records
from adpilot.datasets.coat import load_coat
from adpilot.datasets.copytext import load_advertisegen, load_kobe, parse_attributes
from adpilot.datasets.export import EXPORTS, export_records
from adpilot.datasets.ipinyou import ipinyou_campaigns, load_ipinyou_bidding, load_ipinyou_ctr, load_libfm
from adpilot.datasets.open_bandit import load_open_bandit
from adpilot.datasets.reviews import (
    chinese_review_records,
    load_chinese_reviews,
    load_womens_reviews,
    womens_review_records,
)
from adpilot.datasets.samples import SAMPLES, load_sample
from adpilot.datasets.talking_data import load_talkingdata, talkingdata_events
from adpilot.datasets.taobao import load_taobao_behavior, taobao_events
from adpilot.errors import InputFileError, UserError
from adpilot.schema import EVENT_ARROW_SCHEMA, PRODUCT_ARROW_SCHEMA


@pytest.mark.parametrize(("policy", "campaign", "n_actions"), [("random", "all", 80), ("bts", "men", 34)])
def test_open_bandit(shared_data: Path, policy: str, campaign: str, n_actions: int) -> None:
    fb = load_open_bandit(policy, campaign, shared_data / "open_bandit_dataset")
    assert fb.n_rounds == 10_000 and fb.n_actions == n_actions and fb.len_list == 3
    assert fb.action.max() < n_actions and set(np.unique(fb.position)) == {0, 1, 2}
    assert fb.users.shape[0] == fb.n_rounds and fb.affinity.shape == (fb.n_rounds, n_actions)
    assert fb.items.shape[0] == n_actions
    assert ((fb.pscore > 0) & (fb.pscore <= 1)).all() and set(np.unique(fb.reward)) <= {0, 1}
    if policy == "random":
        assert np.allclose(fb.pscore, 1 / n_actions)  # uniform logging policy


def test_open_bandit_rejects_unknown_policy(shared_data: Path) -> None:
    with pytest.raises(UserError, match="policy"):
        load_open_bandit("greedy", "all", shared_data / "open_bandit_dataset")


def test_ipinyou_bidding(shared_data: Path) -> None:
    campaigns = ipinyou_campaigns(shared_data / "ipinyou_rtb_rlbdp")
    assert "1458" in campaigns
    log = load_ipinyou_bidding("1458", shared_data / "ipinyou_rtb_rlbdp")
    assert log.n_auctions == 100_000 and len(log.episodes()) == 100
    assert int(log.click.sum()) == 143  # SOURCE.txt: clicks 1458:143
    assert log.market_price.min() >= 0 and ((log.pctr > 0) & (log.pctr < 1)).all()
    assert log.info["clk_train"] == 2454 and log.train_info["CPC"] > 0


def test_ipinyou_ctr(shared_data: Path) -> None:
    data = load_ipinyou_ctr(path=shared_data / "ipinyou_deepctr_fm")
    assert data.X.shape == (26_773, 133_541) and int(data.y.sum()) == 255
    assert (np.diff(data.X.indptr) == 16).all()
    assert set(data.field_of[data.X[0].indices]) - {""}


def test_talkingdata(shared_data: Path) -> None:
    clicks = load_talkingdata(shared_data / "talkingdata_adtracking")
    events = talkingdata_events(clicks)
    n_conv = int(pc.sum(clicks["is_attributed"]).as_py())
    assert clicks.num_rows == 80_000 and events.num_rows == 80_000 + n_conv
    assert events.schema.equals(EVENT_ARROW_SCHEMA)
    conv = events.filter(pc.equal(events["type"], "conversion"))
    assert len(conv) == n_conv and pc.all(pc.is_valid(conv["ts"])).as_py()


def test_advertisegen_and_kobe(shared_data: Path) -> None:
    ads = load_advertisegen(shared_data / "advertisegen")
    assert len(ads) == 535 and ads[0].attributes["类型"] == "上衣" and ads[0].text
    assert all(ex.pairs for ex in ads)
    kobe = load_kobe(shared_data / "kobe_taodescribe")
    assert len(kobe) == 2_618 and kobe[0].title.endswith("小提琴") and kobe[0].aspect == "4"
    assert " " not in kobe[0].text and kobe[0].user_tag == "a"


def test_parse_attributes_ignores_malformed_parts() -> None:
    assert parse_attributes("类型#上衣**颜色#*#白色*材质#棉") == [("类型", "上衣"), ("材质", "棉")]


def test_reviews(shared_data: Path) -> None:
    zh = load_chinese_reviews(shared_data / "chinese_ecommerce_reviews")
    events, products = chinese_review_records(zh)
    assert zh.num_rows == 62_774 and len(products) == 10
    assert not pc.any(pc.starts_with(zh["review"], "\ufeff")).as_py()
    assert events.schema.equals(EVENT_ARROW_SCHEMA) and products.schema.equals(PRODUCT_ARROW_SCHEMA)
    en = load_womens_reviews(shared_data / "womens_ecommerce_reviews")
    events, products = womens_review_records(en)
    assert en.num_rows == 23_486 and events.num_rows == 23_486
    assert pc.count_distinct(en["clothing_id"]).as_py() == products.num_rows
    assert pc.all(pc.is_in(events["item_id"], products["product_id"])).as_py()


def test_coat(shared_data: Path) -> None:
    coat = load_coat(shared_data / "coat_mnar")
    assert coat.train.shape == (290, 300) and (coat.train > 0).sum() == 6_960 and (coat.test > 0).sum() == 4_640
    users, items, ratings = coat.triples(coat.test)
    assert len(users) == 4_640 and ratings.min() >= 1 and ratings.max() <= 5
    assert coat.user_features.shape[1] == len(coat.user_feature_names) == 14
    assert coat.item_features.shape[1] == len(coat.item_feature_names) == 33


def test_amazon(shared_data: Path) -> None:
    beauty = load_s3rec("Beauty", shared_data / "amazon_seq_s3rec")
    assert len(beauty.users) == 22_363 and beauty.n_interactions == 198_502
    history, last = beauty.leave_last_out()
    assert len(last[0]) == 1 and len(history[0]) == len(beauty.sequences[0]) - 1
    events, products = sequence_records(beauty)
    assert events.num_rows == 198_502 and products.num_rows == 12_101
    first_user = events.slice(0, len(beauty.sequences[0]))
    assert first_user["item_id"].to_pylist() == [f"Beauty{i}" for i in beauty.sequences[0]]
    assert pc.all(pc.is_in(events["item_id"], products["product_id"])).as_py()
    grocery = load_grocery(shared_data / "amazon_grocery_rechorus")
    assert grocery.events.num_rows == 121_892 and grocery.events.schema.equals(EVENT_ARROW_SCHEMA)
    assert pc.count_distinct(grocery.events["user_id"]).as_py() == 14_681
    assert grocery.products.schema.equals(PRODUCT_ARROW_SCHEMA) and len(grocery.meta) == grocery.products.num_rows


def test_taobao(shared_data: Path) -> None:
    rows = load_taobao_behavior(shared_data / "taobao_userbehavior_flink96k")
    events, items = taobao_events(rows)
    counts = dict(zip(*pc.value_counts(events["type"]).flatten(), strict=True))
    assert {k.as_py(): v.as_py() for k, v in counts.items()} == {
        "page_view": 85_774, "add_to_cart": 5_292, "click": 2_959, "purchase": 2_144}
    assert pc.count_distinct(items["item_id"]).as_py() == 75_385


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_tiny_samples(shared_data: Path, name: str) -> None:
    table = load_sample(name, shared_data / SAMPLES[name].file)
    assert table.num_rows >= 10 and table.num_columns >= 4


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="coat_mnar"):
        load_coat(tmp_path / "coat_mnar")
    (tmp_path / "coat").mkdir()
    with pytest.raises(InputFileError, match=r"train\.ascii"):
        load_coat(tmp_path / "coat")
    with pytest.raises(UserError, match="name"):
        load_sample("imagenet")
    with pytest.raises(UserError, match="name"):
        export_records("imagenet", tmp_path)


def test_malformed_files_are_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fm"
    bad.write_text("1 3:1 x:y\n")
    with pytest.raises(InputFileError, match="line 1"):
        load_libfm(bad)
    good = tmp_path / "good.fm"
    good.write_text("1 0:1 2:1\n0 1:1\n")
    data = load_libfm(good)
    assert data.X.shape == (2, 3) and data.y.tolist() == [1, 0]


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_export_writes_schema_conformant_records(shared_data: Path, tmp_path: Path, name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADPILOT_SHARED_DATA", str(shared_data))
    written = export_records(name, tmp_path)
    events = pq.read_table(tmp_path / "events.parquet")
    assert events.schema.equals(EVENT_ARROW_SCHEMA) and events.num_rows == written["events.parquet"] > 0
    assert pc.all(pc.is_valid(events["ts"])).as_py() and pc.all(pc.is_valid(events["user_id"])).as_py()
    if "products.parquet" in written:
        assert pq.read_schema(tmp_path / "products.parquet").remove_metadata().equals(PRODUCT_ARROW_SCHEMA)
