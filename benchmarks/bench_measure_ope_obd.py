"""OPE on the Open Bandit Dataset: adpilot's DM/IPW/SNIPW/DR vs obp, estimating BTS from the Random log.

Reproduces obp's examples/obd protocol (evaluation=BTS, behaviour=Random, logistic-regression reward model with
3-fold cross-fitting, ``n_runs`` bootstrap resamples of the log seeded 0..n_runs-1) and prints, per estimator:
the largest |adpilot - obp| over runs on identical inputs, and the mean/std relative error against BTS's
on-policy click rate next to the published figures (DM 0.157, IPW 0.311, DR 0.292 on `all`, 30 runs).

    .venv/bin/python benchmarks/bench_measure_ope_obd.py --campaign all --n-runs 30
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from adpilot.datasets.open_bandit import read_bandit_log
from adpilot.measure import ope
from adpilot.measure.obd import Featurizer
from adpilot.measure.reward_model import RewardModel

PUBLISHED = {"all": {"dm": 0.157, "ipw": 0.311, "snipw": 0.312, "dr": 0.292}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", default="all", choices=["all", "men"])
    parser.add_argument("--n-runs", type=int, default=30)
    parser.add_argument("--n-sim", type=int, default=100_000, help="Monte Carlo draws for BTS's action distribution")
    parser.add_argument("--random-state", type=int, default=12345)
    args = parser.parse_args()
    from obp.dataset import OpenBanditDataset
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        InverseProbabilityWeighting,
        RegressionModel,
        SelfNormalizedInverseProbabilityWeighting,
    )
    from obp.policy import BernoulliTS
    from sklearn.linear_model import LogisticRegression

    root = Path(os.environ.get("ADPILOT_SHARED_DATA", "../shared/data")) / "open_bandit_dataset"
    log = read_bandit_log(root / "random" / args.campaign)
    truth = read_bandit_log(root / "bts" / args.campaign).reward.mean()
    obd = OpenBanditDataset(behavior_policy="random", campaign=args.campaign, data_path=root)
    if not (np.array_equal(obd.action, log.action) and np.array_equal(obd.reward, log.reward)):
        raise SystemExit("adpilot's reader and obp's loader disagree on the log")
    bts = BernoulliTS(n_actions=obd.n_actions, len_list=obd.len_list, random_state=args.random_state,
                      is_zozotown_prior=True, campaign=args.campaign)
    single = bts.compute_batch_action_dist(n_sim=args.n_sim)[0]
    ours = {name: cls() for name, cls in ope.ESTIMATORS.items()}
    peers = {"dm": DirectMethod(), "ipw": InverseProbabilityWeighting(),
             "snipw": SelfNormalizedInverseProbabilityWeighting(), "dr": DoublyRobust()}
    errors = {name: [] for name in ours}
    own_errors = {name: [] for name in ours}
    q_diff = 0.0
    obp_failed = 0
    max_diff = dict.fromkeys(ours, 0.0)
    t_ours = t_peer = 0.0
    for b in range(args.n_runs):
        fb = obd.sample_bootstrap_bandit_feedback(random_state=b)
        q_mine = RewardModel(obd.n_actions, obd.len_list, obd.action_context).fit_predict(
            fb["context"], fb["action"], fb["reward"], fb["position"], n_folds=3, random_state=args.random_state)
        try:
            q_hat = RegressionModel(n_actions=obd.n_actions, len_list=obd.len_list, action_context=obd.action_context,
                                    base_model=LogisticRegression(C=100, max_iter=10000, random_state=12345),
                                    ).fit_predict(context=fb["context"], action=fb["action"], reward=fb["reward"],
                                                  position=fb["position"], pscore=fb["pscore"], n_folds=3,
                                                  random_state=args.random_state)
            q_diff = max(q_diff, float(np.abs(q_mine - q_hat).max()))
        except ValueError:  # obp's model cannot fit a fold without clicks at some position; ours uses a constant
            obp_failed += 1
            q_hat = q_mine
        own = _own_features_estimates(log, b, single, ours, args.random_state)
        inputs = dict(reward=fb["reward"], action=fb["action"], position=fb["position"], pscore=fb["pscore"],
                      action_dist=np.tile(single, (fb["n_rounds"], 1, 1)), estimated_rewards_by_reg_model=q_hat)
        for name in ours:
            start = time.perf_counter()
            mine = ours[name].estimate_policy_value(**inputs)
            t_ours += time.perf_counter() - start
            start = time.perf_counter()
            peer = peers[name].estimate_policy_value(**inputs)
            t_peer += time.perf_counter() - start
            max_diff[name] = max(max_diff[name], abs(mine - peer))
            errors[name].append(abs(mine - truth) / truth)
            own_errors[name].append(abs(own[name] - truth) / truth)
    print(f"campaign={args.campaign} runs={args.n_runs} BTS on-policy CTR={truth:.5f} "
          f"Random on-policy CTR={log.reward.mean():.5f}")
    print(f"reward model: max|adpilot RewardModel - obp RegressionModel| on obp's features = {q_diff:.2e} "
          f"(obp's could not fit {obp_failed} of {args.n_runs} runs: a fold without clicks; adpilot's used there)")
    print(f"{'estimator':10s} {'max|adpilot-obp|':>17s} {'rel.err mean':>13s} {'std':>7s} {'published':>10s} "
          f"{'adpilot features: mean':>23s} {'std':>7s}")
    for name in ours:
        published = PUBLISHED.get(args.campaign, {}).get(name)
        print(f"{name:10s} {max_diff[name]:17.2e} {np.mean(errors[name]):13.3f} {np.std(errors[name], ddof=1):7.3f} "
              f"{'-' if published is None else f'{published:.3f}':>10s} {np.mean(own_errors[name]):23.3f} "
              f"{np.std(own_errors[name], ddof=1):7.3f}")
    print(f"estimator time adpilot/obp = {t_ours / t_peer:.2f} ({t_ours:.3f}s vs {t_peer:.3f}s)")
    print(f"reproduce: .venv/bin/python benchmarks/bench_measure_ope_obd.py --campaign {args.campaign} "
          f"--n-runs {args.n_runs} --n-sim {args.n_sim}")


def _own_features_estimates(log, b: int, single: np.ndarray, estimators: dict, random_state: int) -> dict:
    """The same bootstrap resample through adpilot's own reader, features and reward model."""
    idx = np.random.RandomState(b).choice(np.arange(log.n_rounds), size=log.n_rounds, replace=True)
    boot = log.take(idx)
    features = Featurizer().fit(boot)
    context = features.context(boot)
    q_hat = RewardModel(boot.n_actions, boot.len_list, features.action_context_).fit_predict(
        context, boot.action, boot.reward, boot.position, n_folds=3, random_state=random_state)
    inputs = dict(reward=boot.reward, action=boot.action, position=boot.position, pscore=boot.pscore,
                  action_dist=np.tile(single, (boot.n_rounds, 1, 1)), estimated_rewards_by_reg_model=q_hat)
    return {name: est.estimate_policy_value(**inputs) for name, est in estimators.items()}


if __name__ == "__main__":
    main()
