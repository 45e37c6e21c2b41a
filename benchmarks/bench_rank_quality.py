"""Test-set quality of the rank models on a tabular file, split by time, against LightGBM in the same run.

The shared files are training data only, so the file is split in file order (TalkingData is sorted by
click time): the first ``1 - test_fraction`` trains (its last 10% validates), the rest is the test set.
Each model gets AUC, log loss and ECE with bootstrap 95% intervals.

Reproduce::

    .venv/bin/python benchmarks/bench_rank_quality.py --data ../shared/data/talkingdata_adtracking/clicks.csv
    .venv/bin/python benchmarks/bench_rank_quality.py --data ../shared/data/ipinyou_deepctr_fm/train.fm.txt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--label", default=None)
    parser.add_argument("--models", default="lr,deepfm,dcnv2")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    import lightgbm as lgb

    from adpilot.rank.estimator import CTRModel, infer_spec
    from adpilot.rank.metrics import report
    from adpilot.rank.readers import open_source

    source = open_source(a.data, labels=(a.label,) if a.label else None)
    frame = pd.concat(source.frames())
    cut = int(len(frame) * (1 - a.test_fraction))
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    label = source.labels[0]
    y = test[label].to_numpy(np.float64)
    print(f"{a.data.name}: train {len(train)} rows ({int(train[label].sum())} positives), test {len(test)} rows "
          f"({int(y.sum())} positives); command: {' '.join(sys.argv)}")
    preds: dict[str, np.ndarray] = {}
    for name in a.models.split(","):
        start = time.perf_counter()
        model = CTRModel(name, labels=(label,), epochs=a.epochs, seed=a.seed).fit(train)
        preds[name] = model.predict_heads(test)[:, 0]
        print(f"  trained {name} in {time.perf_counter() - start:.0f}s (best epoch {model.result_.best_epoch})")
    spec = infer_spec(train, (label,))
    columns = [*spec.categorical, *spec.dense]

    def as_lgb(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Categorical(df[c].astype(str), categories=sorted(train[c].astype(str).unique()))
                             if c in spec.categorical else df[c] for c in columns})

    booster = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, num_leaves=31, min_child_samples=20,
                                 subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=a.seed,
                                 n_jobs=1, verbose=-1, max_cat_to_onehot=8, cat_smooth=10)
    booster.fit(as_lgb(train), train[label].to_numpy())
    preds["lightgbm (peer)"] = booster.predict_proba(as_lgb(test))[:, 1]
    print(f"test metrics, bootstrap 95% intervals over rows ({a.n_boot} resamples):")
    for name, p in preds.items():
        metrics = report(y, p, None, a.n_boot, a.seed)
        print(f"  {name:16s} " + "  ".join(f"{k} {v}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
