"""The conformance suite: every registered model passes the same checks (nobody opts out by forgetting)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adpilot.errors import UserError
from adpilot.rank.estimator import CTRModel
from adpilot.rank.models import REGISTRY
from adpilot.rank.scorer import load_scorer
from adpilot.rank.trainer import predict

VARIANTS = {"dcnv2-low-rank": ("dcnv2", {"cross_rank": 4})}
"""Configurations with their own layout (and numpy forward) that the suite checks as if they were models."""


def _labels(name: str) -> tuple[str, ...]:
    return ("click", "conversion") if REGISTRY[name].heads == ("click", "conversion") else ("click",)


def _fit(name: str, frame: pd.DataFrame, seed: int = 0) -> CTRModel:
    train, valid = frame.iloc[:450], frame.iloc[450:]
    kind, extra = VARIANTS.get(name, (name, {}))
    model = CTRModel(kind, labels=_labels(kind), epochs=3, batch_size=64, embedding_dim=8, hidden=(16,),
                     max_buckets=256, max_seq_len=8, seed=seed, learning_rate=0.01, **extra)
    return model.fit(train, valid)


@pytest.fixture(scope="module", params=[*sorted(REGISTRY), *VARIANTS])
def fitted(request: pytest.FixtureRequest, frame: pd.DataFrame) -> tuple[str, CTRModel]:
    return request.param, _fit(request.param, frame)


def test_fit_returns_self_and_learns(fitted, frame):
    name, model = fitted
    p = model.predict_proba(frame.iloc[450:])
    assert p.shape == (150, 2) and np.allclose(p.sum(1), 1)
    assert model.result_.best_auc > 0.6, f"{name} did not learn the synthetic signal"


def test_save_load_round_trip_identical(fitted, frame, tmp_path):
    name, model = fitted
    path = model.save(tmp_path / name)
    again = CTRModel.load(path)
    np.testing.assert_array_equal(model.predict_heads(frame), again.predict_heads(frame))


def test_numpy_scorer_matches_torch(fitted, frame, tmp_path):
    name, model = fitted
    scorer = load_scorer(model.save(tmp_path / name))
    rows = frame.iloc[:40]
    ads = {c: rows[c].to_numpy() for c in ("item_id", "cate", "price", "slot", "user_id")}
    ads["ad_vec"] = np.stack(rows["ad_vec"].to_numpy())
    ads["hist_item_id"], ads["hist_cate"] = list(rows["hist_item_id"]), list(rows["hist_cate"])
    pctr, pcvr = scorer.score({}, ads, {})
    expected = model.predict_heads(rows)
    np.testing.assert_allclose(pctr, expected[:, 0], rtol=1e-4, atol=1e-6)
    assert pcvr.shape == pctr.shape and ((pcvr >= 0) & (pcvr <= 1)).all()
    # serving shape: one user's history and context broadcast over the candidates (a separate fast path)
    user = {"hist_item_id": rows["hist_item_id"].iloc[3], "hist_cate": rows["hist_cate"].iloc[3]}
    shared = rows.assign(hist_item_id=[user["hist_item_id"]] * len(rows), hist_cate=[user["hist_cate"]] * len(rows),
                         slot="top")
    del ads["hist_item_id"], ads["hist_cate"], ads["slot"]
    pctr, _ = scorer.score(user, ads, {"slot": "top"})
    np.testing.assert_allclose(pctr, model.predict_heads(shared)[:, 0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("request_level", [("cate", "price"), ("slot", "ad_vec"), ("item_id",), ()])
@pytest.mark.parametrize("history", ["shared", "empty", "per_row"])
def test_numpy_scorer_matches_torch_for_every_plan(fitted, frame, tmp_path, request_level, history):
    """Whichever columns come per request (user/context) and which per candidate, and whatever the history,
    the exported scorer gives the torch model's numbers; a second call (hashes now memoised) gives the same."""
    name, model = fitted
    scorer = load_scorer(model.save(tmp_path / name))
    rows = frame.iloc[100:160].reset_index(drop=True)
    user: dict[str, object] = {c: rows[c].iloc[0] for c in request_level}
    expected = rows.assign(**{c: [rows[c].iloc[0]] * len(rows) for c in request_level})
    ads = {c: (np.stack(expected[c].to_numpy()) if c == "ad_vec" else expected[c].to_numpy())
           for c in ("item_id", "cate", "price", "slot", "user_id", "ad_vec") if c not in request_level}
    if history == "per_row":
        ads["hist_item_id"], ads["hist_cate"] = list(rows["hist_item_id"]), list(rows["hist_cate"])
    else:
        items = [] if history == "empty" else [3, 7, 3, 11]
        user["hist_item_id"], user["hist_cate"] = items, [i % 5 for i in items]
        expected = expected.assign(hist_item_id=[items] * len(rows), hist_cate=[[i % 5 for i in items]] * len(rows))
    want = model.predict_heads(expected)
    for _ in range(2):
        pctr, pcvr = scorer.score(user, ads, {})
        np.testing.assert_allclose(pctr, want[:, 0], rtol=1e-4, atol=1e-6)
    if REGISTRY[model.model].heads == ("click", "conversion"):  # the calibrated CVR tower; pCTCVR = pCTR * pCVR
        np.testing.assert_allclose(pcvr, model.predict_cvr(expected), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(want[:, 1], want[:, 0] * model.predict_cvr(expected), rtol=1e-9)
        raw = predict(model.module_, model.encoder_.encode(expected))
        assert model.calibrators_[1].method == "platt"
        np.testing.assert_allclose(pcvr, model.calibrators_[1].apply(raw[:, 1] / raw[:, 0]), rtol=1e-4, atol=1e-6)


def test_scorer_edge_requests(fitted, tmp_path):
    """No candidates, or candidates carrying no column the model reads: shapes right, no crash."""
    name, model = fitted
    scorer = load_scorer(model.save(tmp_path / name))
    pctr, pcvr = scorer.score({"hist_item_id": [1, 2]}, {"item_id": np.array([], np.int64)}, {})
    assert pctr.shape == pcvr.shape == (0,)
    pctr, _ = scorer.score({}, {"unknown": np.arange(3)}, {"slot": "top"})
    assert pctr.shape == (3,) and np.ptp(pctr) < 1e-6 and ((pctr > 0) & (pctr < 1)).all()


def test_same_seed_same_output(fitted, frame):
    name, model = fitted
    again = _fit(name, frame, seed=0)
    np.testing.assert_array_equal(model.predict_heads(frame), again.predict_heads(frame))


def test_column_order_irrelevant(fitted, frame):
    _, model = fitted
    shuffled = frame[list(reversed(frame.columns))]
    np.testing.assert_array_equal(model.predict_heads(frame), model.predict_heads(shuffled))


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize(("param", "value"), [("embedding_dim", 0), ("dropout", 1.5), ("epochs", 0),
                                              ("learning_rate", -1.0), ("valid_fraction", 2.0),
                                              ("calibration", "magic")])
def test_invalid_parameters_named(name, param, value, frame):
    with pytest.raises(UserError, match=f"`{param}`"):
        CTRModel(name, labels=_labels(name), **{param: value}).fit(frame)
