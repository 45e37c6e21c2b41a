"""Rank readers built on the ``adpilot.datasets`` parsers: formats the rank CLI takes, and the world's impressions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from adpilot.datasets.world import WorldConfig, write_world
from adpilot.errors import InputFileError, UserError
from adpilot.rank.readers import open_source, world_impressions


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, WorldConfig(n_users=300, n_events=30_000, seed=5))
    return out


def test_world_impressions_labels_and_history(world_dir: Path) -> None:
    frame = world_impressions(world_dir, max_history=5)
    events = pq.read_table(world_dir / "events.parquet").to_pandas()
    counts = events["type"].value_counts()
    assert len(frame) == counts["ad_impression"]
    assert frame["click"].sum() == counts["ad_click"] and frame["conversion"].sum() == counts.get("conversion", 0)
    assert (frame["conversion"] <= frame["click"]).all() and frame["ts"].is_monotonic_increasing
    assert frame["hist_item_id"].map(len).max() == 5 and frame["cate"].notna().all()
    # a row's history: the user's last organic items strictly before the impression, oldest first
    row = frame[frame["hist_item_id"].map(len) == 5].iloc[-1]
    organic = events[(events["user_id"] == row["user_id"]) & events["type"].isin(["click", "add_to_cart", "purchase"])
                     & (events["ts"] < row["ts"])].sort_values("ts", kind="stable")
    assert row["hist_item_id"] == organic["item_id"].tolist()[-5:]
    assert len(row["hist_cate"]) == 5


def test_world_impressions_missing_world(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="events.parquet is missing"):
        world_impressions(tmp_path)


def test_libfm_gz_keeps_token_order(tmp_path: Path) -> None:
    path = tmp_path / "t.fm.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("1 9:1 3:1 7:1\n0 2:1 5:1\n")
    frame = next(open_source(path).frames())
    assert frame["label"].tolist() == [1, 0]
    assert frame.iloc[0, 1:].tolist() == ["9", "3", "7"] and frame.iloc[1, 1:].tolist() == ["2", "5", None]


def test_s3rec_plain_text_with_plain_attributes(tmp_path: Path) -> None:
    (tmp_path / "Toys.txt").write_text("1 10 11 12 13 14\n2 11 12 13 14\n")
    (tmp_path / "Toys_item2attributes.json").write_text(json.dumps({str(i): [i % 3, 100 + i] for i in range(10, 15)}))
    test = open_source(tmp_path / "Toys.txt", "test").frame
    assert test["label"].tolist() == [1, 0, 1, 0] and test["item_id"].tolist()[::2] == [14, 14]
    assert test["hist_item_id"].iloc[0] == [10, 11, 12, 13] and test["cate"].iloc[0] == 114
    assert test["brand"].iloc[0] == 14 % 3


def test_rechorus_dev_file_with_negatives(tmp_path: Path) -> None:
    rows = ["user_id\titem_id\ttime\tneg_items"] + [f"{u}\t{i}\t{t}\t[1, 2]" for u, i, t in
                                                    [(7, 3, 30), (7, 1, 10), (7, 2, 20), (7, 4, 40), (8, 2, 5)]]
    (tmp_path / "dev.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "item_meta.csv").write_text("item_id\ti_category\n1\t0\n2\t1\n3\t0\n4\t1\n")
    test = open_source(tmp_path / "dev.csv", "test").frame
    assert test["user_id"].tolist() == [7, 7] and test["item_id"].iloc[0] == 4
    assert test["hist_item_id"].iloc[0] == [1, 2, 3] and test["hist_cate"].iloc[0] == [0, 1, 0]
    (tmp_path / "item_meta.csv").unlink()
    with pytest.raises(UserError, match="item_meta.csv"):
        open_source(tmp_path / "dev.csv", "test")


def test_frames_stream_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "big.fm.txt"
    path.write_text("".join(f"{i % 2} {i}:1 {i + 1}:1\n" for i in range(25)))
    frames = list(open_source(path).frames(batch_rows=10))
    assert [len(f) for f in frames] == [10, 10, 5]
    assert pd.concat(frames)["f0"].tolist() == [str(i) for i in range(25)]
    assert np.array_equal(pd.concat(frames)["label"].to_numpy(), np.arange(25) % 2)
