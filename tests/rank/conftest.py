"""Synthetic CTR data with a known signal, shared by the rank room's tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Users with histories over 30 items in 5 categories; a click is likelier when the candidate's category
    is in the user's history and its text vector points the user's way; conversions follow clicks."""
    rng = np.random.default_rng(seed)
    items = np.arange(30)
    cate = items % 5
    hist = [list(rng.choice(items, size=rng.integers(0, 6), replace=False)) for _ in range(n)]
    target = rng.choice(items, size=n)
    match = np.array([cate[t] in {cate[i] for i in h} for t, h in zip(target, hist, strict=True)])
    vec = rng.normal(size=(n, 8)).astype(np.float32)
    price = rng.gamma(2.0, 10.0, size=n)
    logit = -1.0 + 2.0 * match + 0.8 * vec[:, 0] - 0.02 * price
    click = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    conversion = click * (rng.uniform(size=n) < 0.3 + 0.4 * match)
    return pd.DataFrame({
        "user_id": rng.integers(0, 60, n), "item_id": target, "cate": cate[target],
        "hist_item_id": hist, "hist_cate": [[int(cate[i]) for i in h] for h in hist],
        "price": price, "slot": rng.choice(["top", "side"], n), "ad_vec": list(vec),
        "click": click, "conversion": conversion.astype(int),
    })


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return make_frame()
