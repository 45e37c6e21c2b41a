"""Readers, metrics, calibration and bad input: every user mistake is one clear UserError."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adpilot.errors import UserError
from adpilot.measure.metrics import auc, gauc
from adpilot.rank.checkpoint import load_arrays, save_arrays
from adpilot.rank.estimator import CTRModel
from adpilot.rank.metrics import Estimate, bootstrap, report
from adpilot.rank.readers import open_source
from adpilot.rank.scorer import load_scorer


def _head(src: Path, dst: Path, n: int) -> Path:
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fin, (gzip.open(dst, "wt") if dst.suffix == ".gz" else open(dst, "w")) as fout:
        for _, line in zip(range(n), fin, strict=False):
            fout.write(line)
    return dst


def test_talkingdata_csv_drops_leak_and_derives_hour(shared_data, tmp_path):
    path = _head(shared_data / "talkingdata_adtracking/clicks.csv", tmp_path / "clicks.csv", 2000)
    source = open_source(path)
    frame = next(source.frames())
    assert source.labels == ("is_attributed",)
    assert "attributed_time" not in frame and {"hour", "weekday"} <= set(frame.columns)


def test_libfm_becomes_fields(shared_data, tmp_path):
    path = _head(shared_data / "ipinyou_deepctr_fm/train.fm.txt", tmp_path / "train.fm.txt", 300)
    frame = next(open_source(path).frames())
    assert frame.shape == (300, 17) and set(frame["label"].unique()) <= {0, 1}


def test_s3rec_sequence_task_roles(shared_data, tmp_path):
    src = shared_data / "amazon_seq_s3rec"
    path = _head(src / "Beauty.txt.gz", tmp_path / "Beauty.txt.gz", 200)
    shutil.copy(src / "Beauty_item2attributes.json.gz", tmp_path)
    test = open_source(path, "test").frame
    train = open_source(path, "train").frame
    assert len(test) == 400 and test["label"].tolist()[:2] == [1, 0]
    assert {"item_id", "cate", "brand", "hist_item_id", "hist_cate"} <= set(test.columns)
    # the test target never appears as a training target of the same user at the same position
    first = test.iloc[0]
    assert first["item_id"] not in set(train.loc[train["user_id"] == first["user_id"], "hist_item_id"].iloc[-1])


def test_rechorus_needs_its_meta(shared_data, tmp_path):
    path = _head(shared_data / "amazon_grocery_rechorus/train.csv.gz", tmp_path / "train.csv.gz", 3000)
    with pytest.raises(UserError, match="item_meta.csv"):
        open_source(path, "test")


def test_csv_without_label_names_the_option(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="no label column .* pass --label"):
        open_source(bad)


def test_auc_undefined_says_so():
    with pytest.raises(UserError, match="AUC is undefined: every label is 0"):
        auc(np.zeros(5), np.linspace(0, 1, 5))
    out = report(np.zeros(5), np.linspace(0, 1, 5), n_boot=10)
    assert "undefined" in out["auc"] and isinstance(out["logloss"], Estimate)


def test_gauc_and_cluster_interval_cover_value():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 2000)
    y = rng.integers(0, 2, 2000)
    p = np.clip(0.3 * y + rng.uniform(size=2000) * 0.7, 0, 1)
    est = bootstrap(lambda i: gauc(users[i], y[i], p[i]), 2000, users, n_boot=30)
    assert est.low <= est.value <= est.high and est.value > 0.6


def test_all_negative_training_labels(frame):
    data = frame.assign(click=0)
    with pytest.raises(UserError, match="every training label in `click` is 0"):
        CTRModel("lr", labels=("click",), epochs=1).fit(data)


def test_missing_label_and_feature_columns(frame, tmp_path):
    with pytest.raises(UserError, match="label column `nope`"):
        CTRModel("lr", labels=("nope",), epochs=1).fit(frame)
    model = CTRModel("lr", labels=("click",), epochs=1, max_buckets=64).fit(frame)
    with pytest.raises(UserError, match="missing column `slot`"):
        model.predict_proba(frame.drop(columns=["slot"]))


def test_esmm_needs_two_labels(frame):
    with pytest.raises(UserError, match="needs 2 label column"):
        CTRModel("esmm", labels=("click",), epochs=1).fit(frame)


def test_nan_vector_rejected_nan_dense_imputed(frame):
    model = CTRModel("lr", labels=("click",), epochs=1, max_buckets=64).fit(frame)
    broken = frame.copy()
    broken["ad_vec"] = [np.full(8, np.nan, np.float32)] * len(frame)
    with pytest.raises(UserError, match="`ad_vec` contains NaN"):
        model.predict_proba(broken)
    gaps = frame.assign(price=np.nan)
    assert np.isfinite(model.predict_proba(gaps)).all()


def test_model_file_from_another_version(tmp_path):
    path = save_arrays(tmp_path / "m", {"kind": "lr"}, {"x": np.zeros(1)})
    raw = dict(np.load(path))
    header = raw.pop("__header__").tobytes().decode().replace('"format_version": 1', '"format_version": 99')
    np.savez(path, __header__=np.frombuffer(header.encode(), np.uint8), **raw)
    with pytest.raises(UserError, match="format version 99"):
        load_arrays(path)
    with pytest.raises(UserError, match="not an adpilot model file"):
        (tmp_path / "junk.npz").write_text("junk")
        load_scorer(tmp_path / "junk.npz")


def test_scorer_unseen_ads_and_missing_fields(frame, tmp_path):
    model = CTRModel("din", labels=("click",), epochs=2, max_buckets=256, embedding_dim=8, hidden=(16,)).fit(frame)
    scorer = load_scorer(model.save(tmp_path / "din"))
    n = 200
    ads = {"item_id": [f"new-{i}" for i in range(n)], "cate": np.arange(n) % 5,
           "ad_vec": np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)}
    pctr, pcvr = scorer.score({"hist_item_id": [1, 2, 3], "hist_cate": [1, 2, 3]}, ads, {"slot": "top"})
    assert pctr.shape == (n,) and pctr.dtype == np.float64 and ((pctr > 0) & (pctr < 1)).all()
    assert (pcvr == 0).all()  # single-head model: the documented cvr_prior
    assert np.ptp(pctr) > 0  # the text vector and category still separate unseen ads


def test_frame_round_trip_through_parquet(frame, tmp_path):
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    source = open_source(path, labels=("click",))
    back = pd.concat(source.frames(100))
    assert len(back) == len(frame) and source.group == "user_id"


def test_streaming_fit_from_parquet_matches_in_memory(frame, tmp_path, monkeypatch):
    """Past CACHE_ROWS the trainer re-reads the file in record batches each epoch: same data, same model."""
    from adpilot.rank import estimator as est

    path = tmp_path / "log.parquet"
    frame.to_parquet(path, row_group_size=100)
    kwargs = dict(labels=("click",), epochs=2, max_buckets=256, embedding_dim=8, hidden=(16,), batch_size=64)
    cached = CTRModel("deepfm", **kwargs).fit(path)
    monkeypatch.setattr(est, "CACHE_ROWS", 10)
    streamed = CTRModel("deepfm", **kwargs).fit(path)
    np.testing.assert_allclose(cached.predict_heads(frame), streamed.predict_heads(frame), rtol=1e-5)
    assert streamed.result_.best_auc > 0.6


def test_scorer_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, adpilot.rank.scorer; sys.exit('torch' in sys.modules or 'adpilot.rank.trainer' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
