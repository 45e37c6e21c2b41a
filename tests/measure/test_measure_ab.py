"""A/B analysis: sizes, tests, Bayesian probability, CUPED, and the warnings and refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adpilot.errors import UserError
from adpilot.measure import ab


def _arm(n_users: int, ctr: float, seed: int, pre_strength: float = 0.0, mean_imps: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    propensity = rng.gamma(2.0, 0.5, n_users)  # users differ in how clicky they are
    imps = rng.poisson(mean_imps, n_users) + 1
    clicks = rng.binomial(imps, np.clip(ctr * propensity, 0, 1))
    pre = rng.poisson(imps * np.clip(ctr * propensity, 0, 1) * pre_strength + 1e-9)
    conv = rng.binomial(clicks, 0.1)
    return pd.DataFrame({"user_id": [f"u{seed}_{i}" for i in range(n_users)], "impressions": imps,
                         "clicks": clicks, "conversions": conv, "revenue": conv * 30.0, "pre_clicks": pre})


def test_measure_sample_size_gives_the_planned_power():
    """Simulated two-proportion tests at the computed size reject about 80% of the time."""
    n = ab.sample_size(0.05, 0.2)
    rng = np.random.default_rng(0)
    a = rng.binomial(n, 0.05, 4000)
    b = rng.binomial(n, 0.06, 4000)
    rejected = np.mean([ab.two_proportion_z(x, n, y, n)[1] < 0.05 for x, y in zip(a, b, strict=True)])
    assert 0.77 < rejected < 0.83
    with pytest.raises(ValueError, match="baseline"):
        ab.sample_size(1.2, 0.1)


def test_measure_analyze_finds_a_real_effect_and_cuped_narrows_it():
    a, b = _arm(3000, 0.02, 1, 1.0, 200), _arm(3000, 0.023, 2, 1.0, 200)
    result = ab.analyze(a, b)
    ctr = result.rates[0]
    assert ctr.metric == "CTR" and ctr.p_value < 0.01 and ctr.prob_b_better > 0.99
    assert ctr.a.upper < ctr.b.upper and ctr.relative_lift > 0.1
    assert result.cuped["variance_reduction"] > 0.3
    assert result.cuped["difference"].lower > 0
    assert result.rpm is not None and result.rpm[0].lower < result.rpm[0].estimate < result.rpm[0].upper


def test_measure_analyze_warns_on_small_samples_and_peeking():
    a, b = _arm(30, 0.02, 3), _arm(30, 0.02, 4)
    result = ab.analyze(a, b, planned_n=100_000)
    text = " ".join(result.warnings)
    assert "sample too small" in text and "peeking" in text


def test_measure_event_log_equals_per_user_table(tmp_path):
    events = pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2", "u2", "u1"],
                           "type": ["ad_impression", "ad_click", "purchase", "impression", "page_view", "click"],
                           "value": [None, None, 12.5, None, None, None],
                           "ts": ["2026-01-02", "2026-01-02", "2026-01-02", "2026-01-02", "2026-01-02", "2025-12-01"]})
    events.to_csv(tmp_path / "a.csv", index=False)
    table = ab.read_arm(tmp_path / "a.csv", pd.Timestamp("2026-01-01", tz="UTC")).set_index("user_id")
    assert table.loc["u1", ["impressions", "clicks", "conversions", "revenue"]].tolist() == [1, 1, 1, 12.5]
    assert table.loc["u1", "pre_clicks"] == 1 and table.loc["u2", "impressions"] == 1


def test_measure_cli_refuses_an_empty_arm_without_an_interval(tmp_path):
    from adpilot.cli import _mount, app

    _arm(100, 0.03, 5).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(columns=["user_id", "type", "value", "ts"]).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(UserError, match="arm B has no impressions"):
        ab.analyze(ab.read_arm(tmp_path / "a.csv"), ab.read_arm(tmp_path / "b.csv"))
    _mount()
    result = CliRunner().invoke(app, ["ab", "analyze", "--a", str(tmp_path / "a.csv"), "--b", str(tmp_path / "b.csv")])
    assert result.exit_code != 0 and "[" not in result.output
    ok = CliRunner().invoke(app, ["ab", "analyze", "--a", str(tmp_path / "a.csv"), "--b", str(tmp_path / "a.csv"),
                                  "--planned-n", "100000"])
    assert ok.exit_code == 0 and "peeking" in ok.output and "CTR: A" in ok.output
