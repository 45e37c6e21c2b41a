"""Serving latency: one request, 200 candidate ads, numpy scorer vs the same model in torch (eager and
TorchScript), one thread; and rows/s at batch 1,024.

The request carries what the deliver engine passes (see ``adpilot.rank.base``): user profile (segment, 30 recent
items with categories, a 64-d interest vector), per-ad fields (ad, campaign, category, brand, price bucket, 64-d
text vector) and context (slot, device, geo, hour). The numpy figure is the whole ``Scorer.score`` call (hashing,
forward, calibration); the torch figures are the forward pass alone on pre-encoded tensors (a lower bound for a
torch scorer). Times are CPU time of this process (on a shared machine wall time measures the neighbours), with
``OPENBLAS_NUM_THREADS=1`` so that CPU time is one core's time. Requests are interleaved numpy / eager / script
so that all three see the same machine.

Reproduce::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rank_scorer.py --models deepfm,dcnv2,din,bst,esmm,lr
    # the cheaper-to-serve variants too (their quality: benchmarks/bench_rank_serving_variants.py)
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rank_scorer.py --models din,dcnv2 --cross-rank 0 32 \
        --attention-hidden 64 32 --repeats 400

Interleaving with torch's large forward passes leaves the numpy call colder caches and fresh pages, so each model
is also timed with numpy calls alone, back to back, as a server runs them (interleaved call by call with a peer
``npforward.py`` given by ``--peer-npforward``, e.g. the committed one, for a same-run before/after ratio). The last lines give each model's numpy
p50 as a ratio of the first model's (same run, same machine).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_log(n: int, rng: np.random.Generator) -> pd.DataFrame:
    hist = [list(rng.integers(0, 5000, 30)) for _ in range(n)]
    click = rng.integers(0, 2, n)
    return pd.DataFrame({
        "ad_id": rng.integers(0, 5000, n), "campaign_id": rng.integers(0, 300, n), "category": rng.integers(0, 60, n),
        "brand": rng.integers(0, 400, n), "price_bucket": rng.integers(0, 10, n), "segment_id": rng.integers(0, 20, n),
        "slot": rng.choice(["top", "side", "feed"], n), "device": rng.choice(["ios", "android", "pc"], n),
        "geo": rng.integers(0, 34, n), "hour": rng.integers(0, 24, n),
        "hist_ad_id": hist, "hist_category": [[int(x) % 60 for x in h] for h in hist],
        "ad_vec": list(rng.normal(size=(n, 64)).astype(np.float32)),
        "hist_vec": list(rng.normal(size=(n, 64)).astype(np.float32)),
        "click": click, "conversion": click * rng.integers(0, 2, n),
    })


def cpu_ms(fn) -> float:
    start = time.process_time()
    fn()
    return 1000 * (time.process_time() - start)


def request(rng: np.random.Generator, n: int) -> tuple[dict, dict, dict]:
    """(user, ads, context) as the deliver engine passes them: one user, ``n`` candidates."""
    cands = synthetic_log(n, rng)
    ads = {c: cands[c].to_numpy() for c in ("ad_id", "campaign_id", "category", "brand", "price_bucket")}
    ads["ad_vec"] = np.stack(cands["ad_vec"].to_numpy())
    user = {"segment_id": 3, "hist_ad_id": cands["hist_ad_id"][0], "hist_category": cands["hist_category"][0],
            "hist_vec": cands["hist_vec"][0]}
    return user, ads, {"slot": "top", "device": "ios", "geo": 7, "hour": 21}


def time_calls(runs: dict, repeats: int) -> dict[str, list[float]]:
    """CPU ms of each call, the calls interleaved so that all see the same machine."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(3):  # warm-up (first calls compile plans and fill the hash memo)
        for fn in runs.values():
            fn()
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(cpu_ms(fn))
    return times


def peer_model(path: Path, model: object) -> object:
    """``model`` (a :class:`~adpilot.rank.npforward.NumpyModel`) rebuilt by the ``NumpyModel`` of another
    ``npforward.py`` (e.g. ``git show HEAD:src/adpilot/rank/npforward.py > /tmp/npforward_old.py``): the same
    weights through the peer's forward, for a same-run before/after ratio."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("peer_npforward", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.NumpyModel(model.kind, model.w, model.seq_targets, model.vector_dims, model.n_fields,
                             model.n_dense)


def bench_model(name: str, n: int, repeats: int, batch: int, params: dict,
                peer: Path | None = None) -> dict[str, float]:
    import copy

    import torch

    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.models import REGISTRY
    from adpilot.rank.scorer import load_scorer
    from adpilot.rank.trainer import tensors

    rng = np.random.default_rng(0)
    labels = ("click", "conversion") if len(REGISTRY[name].heads) == 2 else ("click",)
    model = CTRModel(name, labels=labels, epochs=1, max_seq_len=30, **params).fit(synthetic_log(4000, rng))
    scorer = load_scorer(model.save(Path(tempfile.mkdtemp()) / "model"))
    module = model.module_.eval()
    out: dict[str, float] = {}
    for size, key in ((n, "req"), (batch, "batch")):
        user, ads, context = request(rng, size)
        enc = scorer.encoder.encode({**context, **{k: ([v] * size if k in scorer._sequence_columns else v)
                                                   for k, v in user.items()}, **ads}, n=size, strict=False)
        inputs = tensors(enc)
        with torch.no_grad():
            scripted = torch.jit.trace(module, inputs)
            # the numpy scorer must give the torch model's numbers on this very request
            p_torch = module.probabilities(module(*inputs)).double().numpy()[:, 0]
            out[f"{key} max |diff|"] = float(np.abs(scorer.score(user, ads, context)[0]
                                                    - scorer.calibrators[0].apply(p_torch)).max())
            times = time_calls({"numpy": lambda u=user, a=ads, c=context: scorer.score(u, a, c),
                                "eager": lambda x=inputs: module(*x), "script": lambda x=inputs, f=scripted: f(*x)},
                               repeats if key == "req" else max(repeats // 5, 20))
        if key == "req":  # as a server runs it: numpy calls back to back, no torch call in between
            runs = {"alone": lambda u=user, a=ads, c=context: scorer.score(u, a, c)}
            if peer is not None:  # the peer forward interleaved call by call with ours
                other = copy.copy(scorer)
                other.model = peer_model(peer, scorer.model)
                out["peer max |diff|"] = float(np.abs(other.score(user, ads, context)[0]
                                                      - scorer.score(user, ads, context)[0]).max())
                runs["peer"] = lambda u=user, a=ads, c=context, o=other: o.score(u, a, c)
            times.update(time_calls(runs, repeats))
        for k, t in times.items():
            out[f"{key} {k} min"] = float(np.min(t))
            out[f"{key} {k} p50"] = float(np.percentile(t, 50))
            out[f"{key} {k} p99"] = float(np.percentile(t, 99))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="deepfm,dcnv2,din,bst,esmm,lr")
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--cross-rank", type=int, nargs="+", default=[0],
                        help="DCN-v2 cross ranks to measure (0 = full rank; each adds a dcnv2 row).")
    parser.add_argument("--attention-hidden", type=int, nargs="+", default=[64],
                        help="DIN attention-layer widths to measure (64 = the default; each adds a din row).")
    parser.add_argument("--peer-npforward", type=Path, default=None,
                        help="Another npforward.py whose forward is timed against ours, call by call (before/after).")
    a = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shapes are fixed per traced request
    print(f"load average at start {os.getloadavg()}")
    print(f"{a.candidates} candidates per request, {a.repeats} requests per model interleaved numpy/eager/script, "
          "CPU ms of one thread; torch = forward only on pre-encoded tensors")
    print(f"{'model':9s} {'numpy min':>9s} {'p50':>6s} {'p99':>6s} | {'eager p50':>9s} {'p99':>6s} | {'script p50':>10s} "
          f"{'p99':>6s} | {'eager/np':>8s} {'script/np':>9s} | rows/s@{a.batch}: {'numpy':>8s} {'script':>8s} | "
          "max|diff|")
    variants = {"dcnv2": [(f"-r{r}" if r else "", {"cross_rank": r}) for r in a.cross_rank],
                "din": [(f"-a{h}" if h != 64 else "", {"attention_hidden": (h,)}) for h in a.attention_hidden]}
    runs = [(name + suffix, name, params) for name in a.models.split(",")
            for suffix, params in variants.get(name, [("", {})])]
    p50s: dict[str, float] = {}
    alone: list[str] = []
    peer: list[str] = []
    for name, kind, params in runs:
        r = bench_model(kind, a.candidates, a.repeats, a.batch, params, a.peer_npforward)
        p50s[name] = r["req numpy p50"]
        alone.append(f"{name} {r['req alone p50']:.3f}/{r['req alone p99']:.3f}")
        if a.peer_npforward:
            peer.append(f"{name} {r['req alone p50']:.3f}/{r['req alone p99']:.3f} vs {r['req peer p50']:.3f}/"
                        f"{r['req peer p99']:.3f} ({r['req alone p50'] / r['req peer p50']:.2f}x; max|diff| "
                        f"{r['peer max |diff|']:.1e})")
        rows = {k: a.batch / r[f"batch {k} p50"] * 1000 for k in ("numpy", "script")}
        print(f"{name:9s} {r['req numpy min']:9.3f} {r['req numpy p50']:6.3f} {r['req numpy p99']:6.3f} | {r['req eager p50']:9.3f} "
              f"{r['req eager p99']:6.3f} | {r['req script p50']:10.3f} {r['req script p99']:6.3f} | "
              f"{r['req eager p50'] / r['req numpy p50']:8.2f} {r['req script p50'] / r['req numpy p50']:9.2f} | "
              f"{'':13s}{rows['numpy']:8.0f} {rows['script']:8.0f} | "
              f"{max(r['req max |diff|'], r['batch max |diff|']):.1e}")
    print("numpy alone (requests back to back, no torch call between them, as a server runs), p50/p99 ms: "
          + ", ".join(alone))
    if peer:
        print(f"ours vs the peer forward {a.peer_npforward} (numpy alone, interleaved call by call), p50/p99 ms: "
              + ", ".join(peer))
    first = next(iter(p50s))
    print(f"numpy p50 / {first}'s: " + ", ".join(f"{k} {v / p50s[first]:.2f}" for k, v in p50s.items()))
    print(f"load average at end {os.getloadavg()}")
    print(f"command: OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rank_scorer.py --models {a.models} "
          f"--candidates {a.candidates} --batch {a.batch} --repeats {a.repeats} --cross-rank "
          + " ".join(map(str, a.cross_rank)) + " --attention-hidden " + " ".join(map(str, a.attention_hidden))
          + (f" --peer-npforward {a.peer_npforward}" if a.peer_npforward else ""))


if __name__ == "__main__":
    main()
