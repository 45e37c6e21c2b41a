"""``adpilot replay bidding`` on small files: the table, tuning sources, and user errors naming the parameter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from adpilot.errors import UserError
from adpilot.measure.cli_replay import register


@pytest.fixture()
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def main() -> None:
        """Test root."""

    register(root)
    return root


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["560870\t50"]
    for episode in range(1, 7):
        lines.append(str(episode))
        pctr = np.exp(rng.normal(-6, 1, 50)).clip(0, 1)
        price = rng.integers(0, 150, 50)
        click = rng.random(50) < 30 * pctr
        lines += [f"{int(c)}\t{p}\t{q}" for c, p, q in zip(click, price, pctr, strict=True)]
    log = tmp_path / "777.validation.txt"
    log.write_text("\n".join(lines) + "\n")
    info = tmp_path / "info_777.json"
    info.write_text(json.dumps({"cost_train": 70_000, "imp_train": 1000, "clk_train": 3,
                                "price_counter_train": np.bincount(rng.integers(0, 150, 500), minlength=301).tolist()}))
    return log, info


def test_table_lists_every_strategy(app, files):
    log, info = files
    result = CliRunner().invoke(app, ["replay", "bidding", "--log", str(log), "--train-info", str(info),
                                      "--budget-ratio", "1/8"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("777")]
    assert [row[1] for row in rows] == ["mcpc", "lin", "rlb", "resolve"]
    budget = int(70 * 50 / 8)
    assert all(int(row[3]) == budget and int(row[2]) == 6 for row in rows)
    assert "cross-fitted" in result.output and "b0=" in result.output


def test_tune_log_is_used_whole(app, files):
    log, info = files
    result = CliRunner().invoke(app, ["replay", "bidding", "--log", str(log), "--train-info", str(info),
                                      "--strategy", "lin", "--tune-log", str(log), "--budget-ratio", "0.25"])
    assert result.exit_code == 0, result.output
    assert "tuned on --tune-log" in result.output and " / " not in result.output.splitlines()[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["--budget-ratio", "1/zero"], "`budget-ratio`"),
    (["--budget-ratio", "3"], "`budget-ratio` must be in"),
    (["--strategy", "greedy"], "`strategy` must be one of"),
    (["--episode-length", "0"], "`episode-length`"),
])
def test_bad_values_raise_user_errors(app, files, args, message):
    log, info = files
    result = CliRunner().invoke(app, ["replay", "bidding", "--log", str(log), "--train-info", str(info), *args])
    assert isinstance(result.exception, UserError)
    assert message in str(result.exception)


def test_out_writes_curves_the_report_plots(app, files, tmp_path):
    from adpilot.measure.report import build_report

    log, info = files
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["replay", "bidding", "--log", str(log), "--train-info", str(info),
                                      "--strategy", "mcpc", "--strategy", "resolve", "--out", str(run)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    curves = pd.read_parquet(run / "bidding.parquet")
    assert set(curves["bidder"]) == {"777 mcpc", "777 resolve"}
    assert (curves.groupby("bidder")["spend"].diff().dropna() >= 0).all()
    page, pngs = build_report(run)
    assert any(p.name == "bidding.png" for p in pngs) and "Reproduce:" in page.read_text()
