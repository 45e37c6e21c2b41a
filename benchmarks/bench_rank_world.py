"""Rank quality on the synthetic world, where the true click and conversion probabilities are known.

The world's ad impressions come from a uniformly random logging policy (docs/contracts.md), so the log is an
unbiased sample of (user, ad, creative, context); the oracle (``World.p_click`` / ``p_convert``) gives the truth
of every held-out row. Rows are read by :func:`adpilot.rank.readers.world_impressions`; the last ``--test-days``
days are held out. Three figures, each per model seed with a 95% interval (cluster bootstrap over users of the
test rows) and, over several seeds, the seed mean with a t-interval:

1. CTR: a DIN (with the frozen LM vectors) on every ad: AUC on the observed clicks, the *expected* AUC against the
   truth (each row a positive with weight p_true and a negative with weight 1 - p_true: the AUC over infinitely
   many label draws) next to the oracle's own, and the calibration gap: mean |p_model - p_true| and ECE against
   p_true (15 equal-mass bins of p_model).
2. Cold start: ads are split by a hash into seen (1 - ``--cold-share``) and cold; models train on the seen ads'
   impressions and are scored on the cold ads' held-out impressions, with vs without the LM vectors (creative
   text vector ``ad_vec`` and the mean title vector of the user's history ``user_vec``). Reported: AUCs and the
   paired difference (with - without).
3. Multi-task: each of ``--mtl`` (ESMM, and ESCM² = ESMM + the doubly robust counterfactual CVR risk) on all
   impressions (click, conversion) vs a CVR model (``--cvr-model``, uncalibrated: its validation rows hold a
   handful of conversions) trained on clicked impressions only, times a CTR model of the same kind for its
   pCTCVR, all scored over ALL held-out impressions: pCVR against ``p_convert`` (post-click conversion
   probability, as if every impression were clicked), pCVR weighted by ``p_click`` (against P(conversion |
   click), what a click is worth), and pCTCVR = pCTR x pCVR against ``p_click x p_convert`` (what an impression
   is worth, what the auction multiplies): expected AUC, ECE, mean ratio, a table per decile of the model's
   pCTR; then the paired differences (ESCM² - ESMM is the fix's effect, same run, same seed). The multi-task
   models' pCVR is the CVR tower calibrated on the clicked validation rows, as served (``CTRModel.predict_cvr``).

``--parts`` picks which of the three to run (e.g. ``--parts cvr --encoder use`` for the multi-task part alone).

Reproduce (37 min wall on 2 cores at load 15, of which 12 min e5 encoding of 2,561 texts; ``--encoder use`` is
about 15x faster to encode; each seed adds five fits of 1.5-3 min):
    .venv/bin/python benchmarks/bench_rank_world.py --users 20000 --events 3000000 --seeds 0 1
Part 3 alone, one process per seed (~20 min each at load 12: 4 min reading, four fits in 6.5 min, the rest
bootstrap; ``--world DIR`` reuses a world written by ``adpilot world`` with the same config):
    .venv/bin/python benchmarks/bench_rank_world.py --seeds 0 --encoder use --parts cvr --mtl esmm escm2 --n-boot 100
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from adpilot.rank.metrics import Estimate, bootstrap

TRUTH = ("p_click", "p_convert")
"""Oracle columns joined to the rows for scoring; never features."""
LM_VECTORS = ("ad_vec", "user_vec")


def expected_auc(scores: np.ndarray, p_true: np.ndarray) -> float:
    """AUC when row i is a positive with probability ``p_true[i]`` (expectation over label draws; ties 1/2).

    >>> round(expected_auc(np.array([0.1, 0.9]), np.array([0.0, 1.0])), 3)
    1.0
    """
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], p_true[order]
    neg = 1 - pos
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos_g, neg_g = np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)
    below = np.cumsum(neg_g) - neg_g
    self_pairs = (pos * neg).sum()
    return float(((pos_g * (below + 0.5 * neg_g)).sum() - 0.5 * self_pairs) / (pos.sum() * neg.sum() - self_pairs))


def truth_ece(p_model: np.ndarray, p_true: np.ndarray, bins: int = 15, weight: np.ndarray | None = None) -> float:
    """Mean over equal-mass bins of p_model of |mean p_model - mean p_true|, weighted by bin size; with
    ``weight`` (e.g. p_click, to judge pCVR where clicks happen) bins hold equal weight and means are weighted.

    >>> round(truth_ece(np.array([0.1, 0.3]), np.array([0.2, 0.2]), bins=1, weight=np.array([1.0, 3.0])), 3)
    0.05
    """
    order = np.argsort(p_model, kind="stable")
    if weight is None:
        parts, w = np.array_split(np.arange(len(order)), bins), np.ones(len(order))
    else:
        w = np.asarray(weight, np.float64)[order]
        cum = np.cumsum(w)
        parts = np.split(np.arange(len(order)), np.searchsorted(cum, cum[-1] * np.arange(1, bins) / bins, "right"))
    pm, pt = p_model[order], p_true[order]
    return float(sum(abs((w[b] * (pm[b] - pt[b])).sum()) for b in parts if len(b)) / w.sum())


def vectors(world_dir: Path, frame: pd.DataFrame, encoder: str) -> tuple[list, list, float]:
    """(ad_vec per row: the creative's text, user_vec per row: mean title vector of the history; seconds)."""
    import pyarrow.parquet as pq

    from adpilot.understand.registry import get_encoder

    enc = get_encoder(encoder)
    t0 = time.perf_counter()
    creatives = pq.read_table(world_dir / "creatives.parquet", columns=["creative_id", "text"]).to_pandas()
    products = pq.read_table(world_dir / "products.parquet", columns=["product_id", "title"]).to_pandas()
    c_vec = enc.encode(creatives["text"].tolist(), "passage").astype(np.float32)
    p_vec = enc.encode(products["title"].tolist(), "passage").astype(np.float32)
    seconds = time.perf_counter() - t0
    c_row = pd.Index(creatives["creative_id"]).get_indexer(frame["creative_id"])
    p_index = pd.Index(products["product_id"])
    zero = np.zeros(p_vec.shape[1], np.float32)
    user_vec = [p_vec[p_index.get_indexer(h)].mean(0) if len(h) else zero for h in frame["hist_item_id"]]
    return list(c_vec[c_row]), user_vec, seconds


def truth(world_dir: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Oracle p_click and p_convert of every row, in its own context (hour, device, slot, creative)."""
    from adpilot.datasets.world import World

    world = World.load(world_dir)
    hour = (frame["ts"].dt.hour + frame["ts"].dt.minute / 60 + frame["ts"].dt.second / 3600).to_numpy()
    p_click = world.p_click(frame["user_id"].to_numpy(), frame["ad_id"].to_numpy(),
                            creative_ids=frame["creative_id"].to_numpy(), hour=hour,
                            device=frame["device"].to_numpy(), slot=frame["slot"].to_numpy())
    p_convert = world.p_convert(frame["user_id"].to_numpy(), frame["ad_id"].to_numpy(),
                                creative_ids=frame["creative_id"].to_numpy(), device=frame["device"].to_numpy())
    return p_click, p_convert


def fit(model: str, train: pd.DataFrame, labels: tuple[str, ...], drop: tuple[str, ...], a: argparse.Namespace,
        seed: int, calibration: str = "platt"):  # noqa: ANN201 - CTRModel
    from adpilot.rank.estimator import CTRModel

    return CTRModel(model, labels=labels, drop=("ts", *drop), epochs=a.epochs, batch_size=a.batch_size,
                    embedding_dim=a.embedding_dim, hidden=(64, 32), patience=1, max_seq_len=a.history,
                    calibration=calibration, seed=seed, threads=a.threads).fit(train)


def raw_heads(model, frame: pd.DataFrame) -> np.ndarray:  # noqa: ANN001 - fitted CTRModel
    """The model's probabilities before calibration, ``[n, n_heads]``."""
    from adpilot.rank.trainer import predict

    return predict(model.module_, model.encoder_.encode(frame))


def show(name: str, value: Estimate | float) -> str:
    return f"  {name:44s} {value}" if isinstance(value, Estimate) else f"  {name:44s} {value:.4f}"


def t_interval(values: list[float]) -> str:
    from scipy import stats

    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return f"{v.mean():.4f}"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.4f} [{v.mean() - half:.4f}, {v.mean() + half:.4f}]"


def run_seed(seed: int, data: pd.DataFrame, test_mask: np.ndarray, cold_ad: np.ndarray, a: argparse.Namespace,
             summary: dict[str, list[float]]) -> None:
    train, test = data[~test_mask], data[test_mask]
    groups = test["user_id"].to_numpy()

    def boot(metric, rows: np.ndarray) -> Estimate:  # noqa: ANN001
        return bootstrap(lambda i: metric(rows[i]), len(rows), groups[rows], a.n_boot, seed)

    def record(key: str, est: Estimate) -> Estimate:
        summary.setdefault(key, []).append(est.value)
        return est

    if "ctr" in a.parts:
        ctr_part(seed, train, test, a, boot, record)
    if "cold" in a.parts:
        cold_part(seed, train, test, test_mask, cold_ad, a, record)
    if "cvr" in a.parts:
        cvr_part(seed, train, test, a, boot, record)
    sys.stdout.flush()


def ctr_part(seed: int, train: pd.DataFrame, test: pd.DataFrame, a: argparse.Namespace, boot, record) -> None:  # noqa: ANN001
    """1. CTR quality against the truth."""
    everyone = np.arange(len(test))
    pc, y = test["p_click"].to_numpy(), test["click"].to_numpy()
    t0 = time.perf_counter()
    ctr = fit(a.model, train, ("click",), TRUTH, a, seed)
    p = ctr.predict_proba(test)[:, 1]
    print(f"seed {seed} - 1. CTR, {a.model} with LM vectors, all ads ({len(train)} train / {len(test)} test "
          f"impressions, {int(y.sum())} test clicks; fit {time.perf_counter() - t0:.0f} s):")
    from adpilot.measure.metrics import auc

    print(show("AUC (observed clicks)", record("ctr_auc", boot(lambda r: auc(y[r], p[r]), everyone))))
    print(show("oracle p_click AUC (observed clicks, ceiling)", boot(lambda r: auc(y[r], pc[r]), everyone)))
    print(show("expected AUC vs p_click", record("ctr_eauc", boot(lambda r: expected_auc(p[r], pc[r]), everyone))))
    print(show("oracle expected AUC (ceiling)", expected_auc(pc, pc)))
    print(show("mean |p_model - p_click|", record("ctr_gap", boot(lambda r: np.abs(p[r] - pc[r]).mean(), everyone))))
    print(show("ECE vs p_click (15 equal-mass bins)", record("ctr_ece", boot(lambda r: truth_ece(p[r], pc[r]),
                                                                             everyone))))
    print(show("mean p_model / mean p_click / click rate", float(p.mean())) +
          f" / {pc.mean():.4f} / {y.mean():.4f}")
    q = raw_heads(ctr, test)[:, 0]
    print(show("before calibration: mean |p - p_click|", boot(lambda r: np.abs(q[r] - pc[r]).mean(), everyone)))
    print(show("before calibration: ECE vs p_click", boot(lambda r: truth_ece(q[r], pc[r]), everyone)))


def cold_part(seed: int, train: pd.DataFrame, test: pd.DataFrame, test_mask: np.ndarray, cold_ad: np.ndarray,
              a: argparse.Namespace, record) -> None:  # noqa: ANN001
    """2. Cold start: with vs without the LM vectors on never-seen ads."""
    groups, y, pc = test["user_id"].to_numpy(), test["click"].to_numpy(), test["p_click"].to_numpy()
    from adpilot.measure.metrics import auc

    seen_train = train[~cold_ad[~test_mask]]
    cold_rows = np.flatnonzero(cold_ad[test_mask])
    t0 = time.perf_counter()
    with_lm = fit(a.model, seen_train, ("click",), TRUTH, a, seed).predict_proba(test.iloc[cold_rows])[:, 1]
    without = fit(a.model, seen_train, ("click",), (*TRUTH, *LM_VECTORS), a, seed).predict_proba(
        test.iloc[cold_rows])[:, 1]
    n_cold_ads = test["ad_id"].iloc[cold_rows].nunique()
    print(f"seed {seed} - 2. cold start: {a.model} trained on {len(seen_train)} impressions of seen ads, tested on "
          f"{len(cold_rows)} impressions of {n_cold_ads} never-seen ads (fits {time.perf_counter() - t0:.0f} s):")
    yc, pcc = y[cold_rows], pc[cold_rows]
    local = np.arange(len(cold_rows))
    cold_groups = groups[cold_rows]

    def cboot(metric) -> Estimate:  # noqa: ANN001
        return bootstrap(lambda i: metric(local[i]), len(local), cold_groups, a.n_boot, seed)

    measures = (("auc", "", "AUC {} LM vectors (observed clicks)", "observed clicks", lambda r, q: auc(yc[r], q[r])),
                ("eauc", "e", "expected AUC vs p_click {} LM", "expected AUC", lambda r, q: expected_auc(q[r], pcc[r])))
    for key, short, title, gain, m in measures:
        print(show(title.format("with"), record(f"cold_{key}_lm", cboot(lambda r, m=m: m(r, with_lm)))))
        print(show(title.format("without"), record(f"cold_{key}_no", cboot(lambda r, m=m: m(r, without)))))
        print(show(f"gain (with - without), {gain}", record(f"cold_{short}gain", cboot(
            lambda r, m=m: m(r, with_lm) - m(r, without)))))
    print(show("oracle expected AUC on these rows (ceiling)", expected_auc(pcc, pcc)))


def cvr_part(seed: int, train: pd.DataFrame, test: pd.DataFrame, a: argparse.Namespace, boot, record) -> None:  # noqa: ANN001
    """3. Multi-task: each of ``--mtl`` (ESMM, ESCM²-DR) vs a CVR model trained on clicks only (times a CTR model
    of the same kind for its pCTCVR), all over ALL held-out impressions: pCVR against ``p_convert``, pCVR where
    clicks happen (click-weighted), and pCTCVR = pCTR x pCVR against ``p_click x p_convert``; then the paired
    differences (ESCM² - ESMM is the counterfactual risk's effect, same run, same seed)."""
    from adpilot.rank.calibration import cvr_tower

    everyone = np.arange(len(test))
    pc, pv = test["p_click"].to_numpy(), test["p_convert"].to_numpy()
    ctcvr = pc * pv
    clicked = train[train["click"] == 1]
    t0 = time.perf_counter()
    naive = fit(a.cvr_model, clicked, ("conversion",), TRUTH, a, seed, calibration="none")
    naive_name = f"{a.cvr_model} on clicks"
    naive_ctr = fit(a.cvr_model, train, ("click",), TRUTH, a, seed).predict_proba(test)[:, 1]
    served = {naive_name: (naive_ctr, naive.predict_proba(test)[:, 1])}
    raw: dict[str, np.ndarray] = {}
    for name in a.mtl:
        model = fit(name, train, ("click", "conversion"), TRUTH, a, seed)
        served[name], raw[name] = (model.predict_heads(test)[:, 0], model.predict_cvr(test)), cvr_tower(
            raw_heads(model, test))
    print(f"seed {seed} - 3. pCVR over all {len(test)} held-out impressions vs p_convert (mean {pv.mean():.4f}): "
          f"{', '.join(a.mtl)} on {len(train)} impressions ({int(train['conversion'].sum())} conversions) vs "
          f"{a.cvr_model} on the {len(clicked)} clicked ones only, its pCTCVR with a {a.cvr_model} CTR model "
          f"(fits {time.perf_counter() - t0:.0f} s):")
    low = np.argsort(pc, kind="stable")[:len(test) // 10]
    clicked_test = test["click"].to_numpy() > 0
    for name, (pctr, q) in served.items():
        key = name if name in a.mtl else "naive"
        print(show(f"{name}: expected AUC vs p_convert", record(f"{key}_eauc", boot(lambda r, q=q: expected_auc(
            q[r], pv[r]), everyone))))
        print(show(f"{name}: mean |pCVR - p_convert|", record(f"{key}_gap", boot(
            lambda r, q=q: np.abs(q[r] - pv[r]).mean(), everyone))))
        print(show(f"{name}: ECE vs p_convert (15 equal-mass bins)", record(f"{key}_ece", boot(
            lambda r, q=q: truth_ece(q[r], pv[r]), everyone))))
        print(show(f"{name}: mean pCVR / p_convert ratio", record(f"{key}_ratio", boot(
            lambda r, q=q: q[r].mean() / pv[r].mean(), everyone))) + f"  (mean pCVR {q.mean():.4f})")
        print(show(f"{name}: lowest p_click decile mean pCVR", float(q[low].mean())) + f" (p_convert "
              f"{pv[low].mean():.4f}); clicked test rows {q[clicked_test].mean():.4f} (p_convert "
              f"{pv[clicked_test].mean():.4f})")
        print(show(f"{name}: click-weighted ECE of pCVR", record(f"{key}_cw_ece", boot(
            lambda r, q=q: truth_ece(q[r], pv[r], weight=pc[r]), everyone))))
        print(show(f"{name}: click-weighted pCVR / p_convert", record(f"{key}_cw_ratio", boot(
            lambda r, q=q: (pc[r] * q[r]).sum() / ctcvr[r].sum(), everyone))))
        p = pctr * q
        print(show(f"{name}: pCTCVR expected AUC vs p_click x p_convert", record(f"{key}_ctcvr_eauc", boot(
            lambda r, p=p: expected_auc(p[r], ctcvr[r]), everyone))))
        print(show(f"{name}: pCTCVR ECE vs p_click x p_convert", record(f"{key}_ctcvr_ece", boot(
            lambda r, p=p: truth_ece(p[r], ctcvr[r]), everyone))) + f"  (mean truth {ctcvr.mean():.6f})")
        print(show(f"{name}: mean pCTCVR / p_click x p_convert", record(f"{key}_ctcvr_ratio", boot(
            lambda r, p=p: p[r].mean() / ctcvr[r].mean(), everyone))))
        print(show(f"{name}: share of pCTCVR on never-converting rows", float(p[pv == 0].sum() / p.sum())) +
              f" (bots: {np.mean(pv == 0):.3f} of the rows)")
        print(decile_table(pctr, q, pc, pv))
        if name in raw:
            print(show(f"{name} before calibration: mean pCVR / expected AUC", float(raw[name].mean())) +
                  f" / {expected_auc(raw[name], pv):.4f}")
    pairs = [(m, naive_name, "naive") for m in a.mtl]
    if "esmm" in a.mtl:
        pairs += [(m, "esmm", "esmm") for m in a.mtl if m != "esmm"]
    measures = (("eauc", "expected AUC", lambda r, p, q: expected_auc(q[r], pv[r])),
                ("ece", "ECE vs p_convert", lambda r, p, q: truth_ece(q[r], pv[r])),
                ("gap", "mean |p - p_convert|", lambda r, p, q: np.abs(q[r] - pv[r]).mean()),
                ("cw_ece", "click-weighted ECE of pCVR", lambda r, p, q: truth_ece(q[r], pv[r], weight=pc[r])),
                ("ctcvr_eauc", "pCTCVR expected AUC", lambda r, p, q: expected_auc(p[r] * q[r], ctcvr[r])),
                ("ctcvr_ece", "pCTCVR ECE", lambda r, p, q: truth_ece(p[r] * q[r], ctcvr[r])))
    for model, other, peer in pairs:
        title = f"{model} - {'on clicks' if peer == 'naive' else peer}"
        for short, label, m in measures:
            print(show(f"{title}: {label}", record(f"{model}_vs_{peer}_{short}", boot(
                lambda r, m=m, o=served[model], b=served[other]: m(r, *o) - m(r, *b), everyone))))
    print(show("oracle expected AUC (ceiling)", expected_auc(pv, pv)))


def decile_table(pctr: np.ndarray, pcvr: np.ndarray, p_click: np.ndarray, p_convert: np.ndarray) -> str:
    """Per decile of the model's pCTR (calibration is conditional on what the model can tell apart): mean
    pCVR, the truth weighted by clicks (P(conversion | click) among those rows: what a click is priced at), the
    unweighted truth (P(conversion) if every row were clicked), and pCTCVR over the truth's p_click x p_convert."""
    decile = np.minimum(np.argsort(np.argsort(pctr, kind="stable"), kind="stable") * 10 // len(pctr), 9)
    rows = {"pCVR": [], "click-weighted p_convert": [], "p_convert": [], "pCTCVR / truth": []}
    for k in range(10):
        d = decile == k
        rows["pCVR"].append(pcvr[d].mean())
        rows["click-weighted p_convert"].append((p_click[d] * p_convert[d]).sum() / p_click[d].sum())
        rows["p_convert"].append(p_convert[d].mean())
        rows["pCTCVR / truth"].append((pctr[d] * pcvr[d]).sum() / max((p_click[d] * p_convert[d]).sum(), 1e-300))
    return "\n".join(f"    by pCTR decile, {name:26s} " + " ".join(
        f"{v:.3g}" if name.startswith("pCTCVR") else f"{v:.4f}" for v in values) for name, values in rows.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, help="An existing world folder (else one is generated).")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Model seeds.")
    parser.add_argument("--test-days", type=int, default=6, help="Last days held out.")
    parser.add_argument("--cold-share", type=float, default=0.3, help="Share of ads never seen in training.")
    parser.add_argument("--model", default="din")
    parser.add_argument("--cvr-model", default="deepfm")
    parser.add_argument("--mtl", nargs="+", default=["esmm", "escm2"], help="Multi-task models of part 3.")
    parser.add_argument("--encoder", default="e5", help="Frozen text encoder: e5 | use.")
    parser.add_argument("--history", type=int, default=20, help="Items of behaviour history per row.")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", nargs="+", choices=("ctr", "cold", "cvr"), default=["ctr", "cold", "cvr"],
                        help="Which figures to measure: 1. ctr, 2. cold start, 3. cvr (multi-task).")
    a = parser.parse_args()
    print("reproduce: .venv/bin/python benchmarks/bench_rank_world.py " + shlex.join(sys.argv[1:]))

    from adpilot.rank.readers import world_impressions

    with tempfile.TemporaryDirectory() as scratch:
        world_dir = a.world
        if world_dir is None:
            from adpilot.datasets.world import WorldConfig, write_world

            world_dir = Path(scratch)
            stats = write_world(world_dir, WorldConfig(n_users=a.users, n_events=a.events, seed=a.world_seed))
            print(f"world: {stats.n_users} users, {stats.n_events} events, {stats.n_ads} ads, seed {a.world_seed} "
                  f"({stats.seconds_events:.0f} s)")
        t0 = time.perf_counter()
        data = world_impressions(world_dir, max_history=a.history)
        data["p_click"], data["p_convert"] = truth(world_dir, data)
        data["ad_vec"], data["user_vec"], enc_seconds = vectors(world_dir, data, a.encoder)
    days = (data["ts"] - data["ts"].min()).dt.days.to_numpy()
    test_mask = days >= days.max() + 1 - a.test_days
    ad_hash = np.array([zlib.crc32(f"{a.world_seed}:{ad}".encode()) % 1000 for ad in data["ad_id"]])
    cold_ad = ad_hash < a.cold_share * 1000
    print(f"{len(data)} impressions, {int(data['click'].sum())} clicks, {int(data['conversion'].sum())} conversions; "
          f"test = last {a.test_days} days ({int(test_mask.sum())} rows); read + truth + {a.encoder} vectors in "
          f"{time.perf_counter() - t0:.0f} s (encoding {enc_seconds:.0f} s)")
    summary: dict[str, list[float]] = {}
    for seed in a.seeds:
        run_seed(seed, data, test_mask, cold_ad, a, summary)
    print(f"over seeds {a.seeds} (mean, t-interval across seeds):")
    for key, values in summary.items():
        print(f"  {key:20s} {t_interval(values)}")


if __name__ == "__main__":
    main()
