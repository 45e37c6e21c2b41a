"""The numpy forward's rearranged paths (issue #4 serving latency) against torch, for the layer counts and shapes
the conformance suite's defaults do not reach: DCN-v2's fused products with 0, 1, 2 or 3 cross layers, full or
low rank, with and without MLP hidden layers, and DIN's shared-history attention with a deeper attention MLP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adpilot.rank.estimator import CTRModel
from adpilot.rank.npforward import _relu
from adpilot.rank.scorer import load_scorer

CONFIGS = [
    *[("dcnv2", {"cross_layers": layers, "cross_rank": rank}) for layers in (0, 1, 2, 3) for rank in (0, 4)],
    ("dcnv2", {"hidden": ()}),
    ("dcnv2", {"hidden": (), "cross_rank": 4, "cross_layers": 1}),
    ("din", {"attention_hidden": (8, 4)}),
    ("din", {"attention_hidden": (6,)}),
]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[0]}-" + "-".join(f"{k}{v}" for k, v in c[1].items()))
def fitted(request: pytest.FixtureRequest, frame: pd.DataFrame) -> CTRModel:
    name, extra = request.param
    params = {"hidden": (16,), **extra}
    return CTRModel(name, labels=("click",), epochs=1, batch_size=64, embedding_dim=8, max_buckets=256,
                    max_seq_len=8, learning_rate=0.02, **params).fit(frame.iloc[:450], frame.iloc[450:])


@pytest.mark.parametrize("shared_history", [True, False])
def test_numpy_forward_equals_torch(fitted, frame, tmp_path, shared_history):
    """The serving shape (one user's history and context, per-candidate ad columns) and the all-per-row shape."""
    scorer = load_scorer(fitted.save(tmp_path / "model"))
    rows = frame.iloc[100:160].reset_index(drop=True)
    ads = {c: rows[c].to_numpy() for c in ("item_id", "cate", "price")}
    ads["ad_vec"] = np.stack(rows["ad_vec"].to_numpy())
    user: dict[str, object] = {"user_id": 7}
    expected = rows.assign(user_id=7, slot="side")
    if shared_history:
        user["hist_item_id"], user["hist_cate"] = [3, 7, 3, 11, 20], [3, 2, 3, 1, 0]
        expected = expected.assign(hist_item_id=[user["hist_item_id"]] * len(rows),
                                   hist_cate=[user["hist_cate"]] * len(rows))
    else:
        ads["hist_item_id"], ads["hist_cate"] = list(rows["hist_item_id"]), list(rows["hist_cate"])
    pctr, _ = scorer.score(user, ads, {"slot": "side"})
    np.testing.assert_allclose(pctr, fitted.predict_heads(expected)[:, 0], rtol=1e-4, atol=1e-6)


def test_relu_in_place_for_any_shape() -> None:
    """The array-zero ReLU grows its shared zero buffer and works on views (a column block of a fused product)."""
    rng = np.random.default_rng(0)
    for shape in ((3,), (5, 7), (400, 1000)):
        x = rng.normal(size=shape).astype(np.float32)
        want = np.maximum(x, 0)
        assert _relu(x) is x
        np.testing.assert_array_equal(x, want)
    block = rng.normal(size=(6, 10)).astype(np.float32)
    want = np.maximum(block[:, 4:], 0)
    _relu(block[:, 4:])
    np.testing.assert_array_equal(block[:, 4:], want)
