"""Reports: one self-contained page with every plot embedded, and each PNG written beside it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from adpilot.errors import UserError
from adpilot.measure import plots
from adpilot.measure.report import build_report


def write_run(run):
    """A run folder holding one result file of every kind (the same data the demo would write)."""
    rng = np.random.default_rng(0)
    run.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"policy": ["untargeted", "popularity", "rules", "adpilot"], "metric": "CTR",
                  "value": [0.010, 0.012, 0.013, 0.018], "lower": [0.009, 0.011, 0.012, 0.016],
                  "upper": [0.011, 0.013, 0.014, 0.020]}).to_parquet(run / "lift.parquet")
    hours = np.arange(24)
    pd.concat([pd.DataFrame({"campaign": c, "hour": hours, "plan": 100 / 24,
                             "spend": 100 / 24 * (1 + 0.3 * np.sin(hours / 4 + i))}) for i, c in
               enumerate(["春季新品", "shoes"])]).to_parquet(run / "pacing.parquet")
    pctr = rng.uniform(0, 0.2, 5000)
    pd.DataFrame({"label": rng.binomial(1, pctr * 0.8), "pctr": pctr}).to_parquet(run / "calibration.parquet")
    centres = rng.normal(0, 3, (4, 16))
    segment = rng.integers(0, 4, 400)
    pd.DataFrame({"vector": list(centres[segment] + rng.normal(0, 1, (400, 16))),
                  "segment": [["运动达人", "bargain", "family", "luxury"][s] for s in segment]}
                 ).to_parquet(run / "segments.parquet")
    pd.DataFrame({"creative_id": ["c1", "c2"], "ad_id": ["a1", "a1"], "text": ["轻盈透气跑鞋", "Light shoes"],
                  "score": [0.8, 0.6]}).to_parquet(run / "creatives.parquet")
    steps = np.arange(100)
    pd.concat([pd.DataFrame({"bidder": b, "step": steps, "spend": steps * 10.0, "clicks": np.sqrt(steps) * k})
               for b, k in (("lin", 1.0), ("rlb", 1.3))]).to_parquet(run / "bidding.parquet")
    (run / "policy_eval.json").write_text(json.dumps({
        "logging_value": {"estimate": 0.004, "lower": 0.002, "upper": 0.006},
        "rows": [{"policy": p, "estimator": "snipw", "value": v, "value_lower": v / 3, "value_upper": v * 3,
                  "lift": v / 0.004, "lift_lower": 0.1, "lift_upper": 9.0, "verdict": "indistinguishable"}
                 for p, v in (("random", 0.004), ("reward-model", 0.006))], "command": "adpilot eval policy ..."}))
    return run


def test_measure_report_embeds_every_plot(tmp_path):
    page, pngs = build_report(write_run(tmp_path / "runs" / "demo"))
    text = page.read_text(encoding="utf-8")
    assert {p.stem for p in pngs} == {"lift", "pacing", "calibration", "segments", "bidding", "policy_eval"}
    assert text.count("data:image/png;base64,") == len(pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    assert "轻盈透气跑鞋" in text and "Creative leaderboard" in text  # HTML keeps the original text
    assert "Not in this run" in text  # coat and ab are absent


def test_measure_report_cli_prints_the_path(tmp_path):
    from typer.testing import CliRunner

    from adpilot.cli import _mount, app

    run = write_run(tmp_path / "demo")
    _mount()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("report.html")


def test_measure_report_refuses_an_empty_or_broken_run(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no result file"):
        build_report(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    pd.DataFrame({"campaign": ["x"]}).to_parquet(tmp_path / "broken" / "pacing.parquet")
    with pytest.raises(UserError, match="pacing"):
        build_report(tmp_path / "broken")


def test_measure_cjk_labels_fall_back_only_without_a_font():
    labels = plots.safe_labels(["运动达人", "bargain"], "segment")
    assert labels == (["运动达人", "bargain"] if plots.cjk_font() else ["segment 0", "bargain"])
