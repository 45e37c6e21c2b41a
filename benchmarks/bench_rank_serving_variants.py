"""Quality of the cheaper-to-serve model variants against the defaults, same split, same run.

A low-rank DCN-v2 cross (``cross_rank``) or a narrower DIN attention layer (``attention_hidden``) makes the numpy
scorer cheaper (``benchmarks/bench_rank_scorer.py``); whether it is a free change is a quality question, answered
here on the DIN-protocol Amazon task (``adpilot.rank.readers.sequence_task``: each user's last item and a sampled
negative are the test rows). Every variant is trained with the same settings and seeds as its model's first
(baseline) variant; the test AUC difference is bootstrapped over users per seed (test-set noise only), and the
per-seed differences get a t-interval across seeds (training noise, which dominates on Beauty-8k: one seed's
difference can be -0.008 and the next +0.002).

Reproduce ("Beauty-8k", the first 8,000 users of Beauty, as in ``bench_rank_fuxictr.py``)::

    .venv/bin/python benchmarks/bench_rank_serving_variants.py \
        --train $ADPILOT_SHARED_DATA/amazon_seq_s3rec/Beauty.txt.gz --head-lines 8000 \
        --variants dcnv2:cross_rank=0 dcnv2:cross_rank=32 --seeds 0 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_rank_fuxictr import head_copy  # noqa: E402 - sibling benchmarks' helpers
from bench_rank_world import t_interval  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict]:
    """``model[:param=value[,param=value]]`` -> (model, CTRModel keyword arguments); tuple parameters take
    ``+``-separated integers (``attention_hidden=32`` or ``hidden=128+64``)."""
    model, _, rest = text.partition(":")
    params: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        params[key] = (tuple(int(v) for v in value.split("+")) if key in ("hidden", "attention_hidden")
                       else int(value))
    return model, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--head-lines", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["dcnv2:cross_rank=0", "dcnv2:cross_rank=32"],
                        help="model[:param=value,...]; the first variant of each model is its baseline")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-seq-len", type=int, default=30)
    parser.add_argument("--n-boot", type=int, default=200)
    a = parser.parse_args()
    import torch

    from adpilot.measure.metrics import auc
    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.metrics import bootstrap
    from adpilot.rank.readers import open_source

    torch.set_num_threads(1)
    print(f"load average at start {os.getloadavg()}")
    source = head_copy(a.train, a.head_lines, Path(tempfile.mkdtemp(prefix="bench_rank_variants_"))) \
        if a.head_lines else a.train
    frames = {role: open_source(source, role, None, 0).frame for role in ("train", "valid", "test")}
    test = frames["test"]
    y, users = test["label"].to_numpy(np.float64), test["user_id"].to_numpy()
    print(f"task {source.name}: train {len(frames['train'])} rows, valid {len(frames['valid'])}, test {len(test)}")
    preds: dict[str, list[np.ndarray]] = {}
    for seed in a.seeds:
        for text in a.variants:
            name, params = parse_variant(text)
            start = time.process_time()
            model = CTRModel(name, epochs=a.epochs, max_seq_len=a.max_seq_len, seed=seed, **params)
            model.fit(frames["train"], frames["valid"])
            preds.setdefault(text, []).append(model.predict_heads(test)[:, 0])
            print(f"  seed {seed} {text:28s} AUC {auc(y, preds[text][-1]):.4f}  "
                  f"({time.process_time() - start:.0f} CPU-s)", flush=True)

    def diff(p: np.ndarray, q: np.ndarray) -> object:
        return bootstrap(lambda i: auc(y[i], p[i]) - auc(y[i], q[i]), len(y), users, a.n_boot, 0)

    print(f"\ntest AUC, bootstrap 95% intervals over users ({a.n_boot} resamples), seeds {a.seeds}:")
    baselines: dict[str, str] = {}
    for text, runs in preds.items():
        name = parse_variant(text)[0]
        base = baselines.setdefault(name, text)
        mean = np.mean(runs, axis=0)
        print(f"  {text:28s} AUC per seed {[round(auc(y, p), 4) for p in runs]}, seeds averaged "
              f"{bootstrap(lambda i, m=mean: auc(y[i], m[i]), len(y), users, a.n_boot, 0)}")
        if base != text:
            for seed, p, q in zip(a.seeds, runs, preds[base], strict=True):
                print(f"    - {base}, seed {seed}: {diff(p, q)}")
            print(f"    - {base}, seeds averaged: {diff(mean, np.mean(preds[base], axis=0))}")
            per_seed = [auc(y, p) - auc(y, q) for p, q in zip(runs, preds[base], strict=True)]
            print(f"    - {base}, mean per-seed difference (t-interval across seeds): {t_interval(per_seed)}")
    print(f"load average at end {os.getloadavg()}")
    print("command: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
