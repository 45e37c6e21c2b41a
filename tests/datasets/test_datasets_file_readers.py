"""File-level readers of ``datasets.amazon`` and ``datasets.ipinyou``: any file in the layout, not only the
shared ones (the rank room trains on whatever file the user names)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from adpilot.datasets.amazon import read_rechorus, read_s3rec
from adpilot.datasets.ipinyou import iter_libfm, load_libfm
from adpilot.errors import InputFileError


def test_iter_libfm_blocks_match_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "x.fm"
    path.write_text("".join(f"{i % 2} {i}:1 {2 * i}:0.5\n" for i in range(7)) + "\n")
    blocks = list(iter_libfm(path, batch_rows=3))
    assert [len(b.y) for b in blocks] == [3, 3, 1]
    whole = load_libfm(path)
    assert whole.X.shape == (7, 13) and whole.y.tolist() == [i % 2 for i in range(7)]
    assert whole.X[6, 12] == pytest.approx(0.5) and whole.X[6, 6] == 1


def test_iter_libfm_names_the_bad_line_past_the_first_block(tmp_path: Path) -> None:
    path = tmp_path / "x.fm.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("1 1:1\n0 2:1\n\n1 3 4:1\n0 x:1\n")
    blocks = iter_libfm(path, batch_rows=2)
    first = next(blocks)
    assert first.X.shape == (2, 3)
    with pytest.raises(InputFileError, match="line 5"):
        list(blocks)


def test_libfm_tokens_without_values_count_as_one(tmp_path: Path) -> None:
    path = tmp_path / "v.fm"
    path.write_text("1 3 4:2\n")
    data = load_libfm(path)
    assert data.X.toarray().tolist() == [[0, 0, 0, 1, 2]]


def test_read_s3rec_any_category(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "Toys.txt.gz", "wt") as handle:
        handle.write("1 5 6 7\n2 6 7\n")
    (tmp_path / "Toys_item2attributes.json").write_text(json.dumps({"5": [1], "6": [2, 3], "7": []}))
    data = read_s3rec(tmp_path / "Toys.txt.gz")
    assert data.name == "Toys" and data.users.tolist() == [1, 2] and data.n_interactions == 5
    assert data.item_attributes[6] == [2, 3]
    (tmp_path / "Toys_item2attributes.json").unlink()
    with pytest.raises(InputFileError, match="Toys_item2attributes.json"):
        read_s3rec(tmp_path / "Toys.txt.gz")


def test_read_rechorus_sequences_by_time(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("user_id\titem_id\ttime\n9\t1\t5\n3\t4\t2\n9\t2\t1\n3\t5\t2\n")
    (tmp_path / "item_meta.csv").write_text("item_id\ti_category\tr_complement\n1\t0\t[2]\n2\t1\t\n")
    log = read_rechorus(tmp_path / "train.csv")
    users, seqs = log.sequences()
    assert users.tolist() == [3, 9] and [s.tolist() for s in seqs] == [[4, 5], [2, 1]]  # ties keep file order
    assert log.meta["also_bought"].to_pylist() == [[2], []] and log.meta["also_viewed"].to_pylist() == [[], []]
    (tmp_path / "bad.csv").write_text("user\titem\n1\t2\n")
    with pytest.raises(InputFileError, match="no column"):
        read_rechorus(tmp_path / "bad.csv")


def test_empty_rechorus_log_has_no_sequences(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("user_id\titem_id\ttime\n")
    (tmp_path / "item_meta.csv").write_text("item_id\ti_category\n")
    users, seqs = read_rechorus(tmp_path / "train.csv").sequences()
    assert len(users) == 0 and seqs == [] and np.asarray(users).dtype == np.int64
