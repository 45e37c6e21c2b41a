"""Fixtures of the measure room's tests: small Open Bandit-format logs whose truth we control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def write_obd_log(folder: Path, *, n: int = 4000, n_items: int = 8, signal: float = 0.0, base_ctr: float = 0.02,
                  seed: int = 0, pscore: float | None = None) -> Path:
    """A uniform-random 3-slot log: users of two kinds; with ``signal`` > 0 each kind prefers its half of the
    items (click rate ``base_ctr`` x (1 + signal) on preferred items, / (1 + signal) elsewhere)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kind = rng.integers(0, 2, n)
    item = rng.integers(0, n_items, n)
    preferred = (item < n_items // 2) == (kind == 0)
    ctr = np.where(preferred, base_ctr * (1 + signal), base_ctr / (1 + signal))
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC").astype(str),
        "item_id": item, "position": rng.integers(1, 4, n), "click": rng.binomial(1, ctr),
        "propensity_score": np.full(n, 1.0 / n_items if pscore is None else pscore),
        "user_feature_0": np.where(kind == 0, "a", "b"), "user_feature_1": rng.choice(["x", "y", "z"], n)})
    frame.to_csv(folder / "log.csv")
    pd.DataFrame({"item_id": np.arange(n_items), "item_feature_0": np.linspace(-1, 1, n_items),
                  "item_feature_1": np.where(np.arange(n_items) < n_items // 2, "left", "right")}
                 ).to_csv(folder / "item_context.csv")
    return folder


@pytest.fixture
def obd_log(tmp_path):
    return lambda name, **kwargs: write_obd_log(tmp_path / name, **kwargs)
