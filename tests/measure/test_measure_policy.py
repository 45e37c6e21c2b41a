"""Policies learned from logs, evaluated on later logs: real lift is found, small data is called so."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from adpilot.datasets.open_bandit import read_bandit_log
from adpilot.measure.policy import POLICIES, rank_to_action_dist
from adpilot.measure.policy_eval import evaluate_policies


def _run(*args: str):
    from adpilot.cli import _mount, app

    _mount()
    return CliRunner().invoke(app, list(args))


def test_measure_rank_to_action_dist_is_a_deterministic_ranking():
    dist = rank_to_action_dist(np.array([[0.1, 0.9, 0.5, 0.2]]), 2)
    assert dist.shape == (1, 4, 2)
    assert dist[0, 1, 0] == 1 and dist[0, 2, 1] == 1 and dist.sum() == 2


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_measure_policy_contract(name, obd_log):
    log = read_bandit_log(obd_log("train", signal=2.0, base_ctr=0.05, n=3000))
    first = POLICIES[name](random_state=3).fit(log).action_dist(log)
    again = POLICIES[name](random_state=3).fit(log).action_dist(log)
    assert first.shape == (log.n_rounds, log.n_actions, log.len_list)
    np.testing.assert_allclose(first.sum(axis=1), 1.0)
    np.testing.assert_array_equal(first, again)
    with pytest.raises(RuntimeError):
        POLICIES[name]().action_dist(log)


def test_measure_personalised_policy_beats_logging_when_the_data_shows_it(obd_log):
    train = read_bandit_log(obd_log("train", signal=3.0, base_ctr=0.05, n=12000, seed=1))
    test = read_bandit_log(obd_log("test", signal=3.0, base_ctr=0.05, n=12000, seed=2))
    logging_value, rows = evaluate_policies(train, test, ["reward-model", "random"], n_bootstrap=300)
    by = {(r.policy, r.estimator): r for r in rows}
    assert by[("reward-model", "snipw")].verdict == "better"
    assert by[("reward-model", "snipw")].lift.lower > 1.3
    assert by[("random", "snipw")].verdict == "indistinguishable"
    assert logging_value.lower < test.reward.mean() < logging_value.upper


def test_measure_cli_says_indistinguishable_on_small_data(obd_log):
    log = obd_log("small", signal=0.0, base_ctr=0.01, n=3000, seed=4)
    result = _run("eval", "policy", "--log", str(log), "--split", "0.5", "--policy", "popularity,random",
                  "--n-bootstrap", "200")
    assert result.exit_code == 0, result.output
    assert "indistinguishable" in result.output and "[" in result.output
    assert "reproduce: adpilot eval policy" in result.output


def test_measure_cli_bad_logs_get_one_sentence(obd_log, tmp_path, capsys, monkeypatch):
    no_clicks = obd_log("zero", base_ctr=0.0, n=500)
    other = obd_log("other", n_items=6, n=500)
    bad_pscore = obd_log("pscore", pscore=1.5, n=500)
    good = obd_log("good", n=500, base_ctr=0.05)
    cases = [(("--train", str(good), "--test", str(no_clicks)), "no clicks"),
             (("--train", str(no_clicks), "--test", str(good)), "no clicks"),
             (("--train", str(good), "--test", str(other)), "item sets differ"),
             (("--train", str(bad_pscore), "--test", str(good)), "propensity_score"),
             (("--log", str(tmp_path / "missing")), "does not exist"),
             (("--log", str(good), "--split", "1.5"), "split")]
    from adpilot.cli import main

    for args, message in cases:
        monkeypatch.setattr("sys.argv", ["adpilot", "eval", "policy", *args, "--n-bootstrap", "50"])
        with pytest.raises(SystemExit) as done:
            main()
        err = capsys.readouterr().err
        assert done.value.code == 2, args
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_measure_open_bandit_random_men_is_indistinguishable(shared_data):
    log = read_bandit_log(shared_data / "open_bandit_dataset" / "random" / "men")
    train, test = log.split_by_time(0.5)
    _, rows = evaluate_policies(train, test, ["popularity"], n_bootstrap=300)
    snipw = next(r for r in rows if r.estimator == "snipw")
    assert snipw.verdict == "indistinguishable"
    assert snipw.lift.upper > 2 * snipw.lift.lower + 1  # wide: ~20 clicks cannot pin a lift down
