"""Serving latency: one request, 200 candidate ads, numpy scorer vs the same model in TorchScript (1 thread).

The request carries what the deliver engine passes (see ``adpilot.rank.base``): user profile (segment, 30 recent
items with categories, a 64-d interest vector), per-ad fields (ad, campaign, category, brand, price bucket, 64-d
text vector) and context (slot, device, geo, hour). Timings include feature hashing for the numpy scorer; the
TorchScript figure is the forward pass alone on pre-encoded tensors (a lower bound for it).

Reproduce::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rank_scorer.py --model din
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_log(n: int, rng: np.random.Generator) -> pd.DataFrame:
    hist = [list(rng.integers(0, 5000, 30)) for _ in range(n)]
    return pd.DataFrame({
        "ad_id": rng.integers(0, 5000, n), "campaign_id": rng.integers(0, 300, n), "category": rng.integers(0, 60, n),
        "brand": rng.integers(0, 400, n), "price_bucket": rng.integers(0, 10, n), "segment_id": rng.integers(0, 20, n),
        "slot": rng.choice(["top", "side", "feed"], n), "device": rng.choice(["ios", "android", "pc"], n),
        "geo": rng.integers(0, 34, n), "hour": rng.integers(0, 24, n),
        "hist_ad_id": hist, "hist_category": [[int(x) % 60 for x in h] for h in hist],
        "ad_vec": list(rng.normal(size=(n, 64)).astype(np.float32)),
        "hist_vec": list(rng.normal(size=(n, 64)).astype(np.float32)),
        "click": rng.integers(0, 2, n),
    })


def median_ms(fn, repeats: int) -> float:
    """Median CPU time of one call in ms (process time: on a shared, oversubscribed machine wall time
    measures the neighbours; run with OPENBLAS_NUM_THREADS=1 so that CPU time is one core's time)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="din")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=300)
    a = parser.parse_args()
    import torch

    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.scorer import load_scorer
    from adpilot.rank.trainer import tensors

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    log = synthetic_log(4000, rng)
    model = CTRModel(a.model, labels=("click",), epochs=1, max_seq_len=30).fit(log)
    path = model.save(Path(tempfile.mkdtemp()) / "model")
    scorer = load_scorer(path)
    n = a.candidates
    cands = synthetic_log(n, rng)
    ads = {c: cands[c].to_numpy() for c in ("ad_id", "campaign_id", "category", "brand", "price_bucket")}
    ads["ad_vec"] = np.stack(cands["ad_vec"].to_numpy())
    user = {"segment_id": 3, "hist_ad_id": cands["hist_ad_id"][0], "hist_category": cands["hist_category"][0],
            "hist_vec": cands["hist_vec"][0]}
    context = {"slot": "top", "device": "ios", "geo": 7, "hour": 21}
    numpy_ms = median_ms(lambda: scorer.score(user, ads, context), a.repeats)
    enc = scorer.encoder.encode({**context, **{k: ([v] * n if k.startswith("hist_") and k != "hist_vec" else v)
                                               for k, v in user.items()}, **ads}, n=n, strict=False)
    inputs = tensors(enc)
    scripted = torch.jit.trace(model.module_, inputs)
    with torch.no_grad():
        torch_ms = median_ms(lambda: scripted(*inputs), a.repeats)
    encode_ms = median_ms(lambda: scorer.encoder.encode({**context, **ads}, n=n, strict=False), a.repeats)
    print(f"model {a.model}, {n} candidates, median CPU time of {a.repeats} requests, 1 thread")
    print(f"  numpy scorer (hashing + forward + calibration): {numpy_ms:.3f} ms")
    print(f"    of which feature hashing/encoding:            ~{encode_ms:.3f} ms")
    print(f"  TorchScript forward on pre-encoded tensors:      {torch_ms:.3f} ms")
    print(f"  ratio numpy scorer / TorchScript forward: {numpy_ms / torch_ms:.2f}")
    print(f"command: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rank_scorer.py --model {a.model} --candidates {n}")


if __name__ == "__main__":
    main()
