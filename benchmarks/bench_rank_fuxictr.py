"""Our sequence model and DCNv2 against FuxiCTR's DIN, DeepFM and DCNv2 on the DIN-protocol Amazon task.

Same task, same split, same inputs: each user's last item (positive) and a sampled item (negative) are the test
rows; the second-to-last item is validation; earlier items train (``adpilot.rank.readers.sequence_task``).
FuxiCTR runs in its own virtualenv (``--fuxi-python``, default ``/tmp/fuxi-venv/bin/python``) on the very arrays
we write here, with its own ``BaseModel`` training loop (Adam, early stopping on validation AUC). Its models are
assembled from FuxiCTR's pip-package layers as its model zoo assembles them (the zoo is not on PyPI).

Reproduce::

    .venv/bin/python benchmarks/bench_rank_fuxictr.py --train ../shared/data/amazon_seq_s3rec/Beauty.txt.gz
    .venv/bin/python benchmarks/bench_rank_fuxictr.py --train $ADPILOT_SHARED_DATA/amazon_grocery_rechorus/train.csv.gz \
        --ours bst,din
    # "Beauty-8k": the first 8,000 users of Beauty (the attributes file is linked beside the head copy)
    .venv/bin/python benchmarks/bench_rank_fuxictr.py --train $ADPILOT_SHARED_DATA/amazon_seq_s3rec/Beauty.txt.gz \
        --head-lines 8000 --ours bst,din --models din,deepfm [--throughput-only]

Every one of ours is compared with every FuxiCTR model on the same test rows (AUC difference, users resampled);
``bst`` has no FuxiCTR twin and its training throughput is compared with FuxiCTR's DIN. Throughput is printed
per wall second and per CPU second of the process (the machine is shared: CPU time is what load leaves alone).

Install FuxiCTR (kept out of our environment)::

    python3.11 -m venv /tmp/fuxi-venv && /tmp/fuxi-venv/bin/pip install torch==2.13.0 fuxictr==2.3.10 \
        pyarrow==17.0.0 "numpy<2"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEQ_FIELDS = ("hist_item_id", "hist_cate", "hist_brand")
TARGETS = {"hist_item_id": "item_id", "hist_cate": "cate", "hist_brand": "brand"}
PEER = {"bst": "din"}
"""FuxiCTR model an ours without a FuxiCTR twin is compared with (training throughput)."""


# --------------------------------------------------------------------------------------- FuxiCTR worker side
def fuxi_worker(data_dir: Path, model_name: str, args: dict) -> dict:
    """Runs inside the FuxiCTR venv: no adpilot imports."""
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.pytorch.layers import (
        CrossNetV2,
        DIN_Attention,
        FactorizationMachine,
        FeatureEmbedding,
        FeatureEmbeddingDict,
        MLP_Block,
    )
    from fuxictr.pytorch.models import BaseModel

    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    meta = json.loads((data_dir / "meta.json").read_text())
    fmap = FeatureMap("bench", str(data_dir))
    fmap.labels = ["label"]
    fmap.default_emb_dim = args["embedding_dim"]
    for name in meta["categorical"]:
        fmap.features[name] = {"type": "categorical", "vocab_size": meta["vocab"][name], "padding_idx": 0,
                               "source": ""}
    for name in meta["sequences"]:
        spec = {"type": "sequence", "vocab_size": meta["vocab"][TARGETS[name]], "padding_idx": 0,
                "max_len": meta["max_len"], "share_embedding": TARGETS[name], "source": ""}
        if model_name != "din":
            spec["feature_encoder"] = "layers.MaskedAveragePooling()"
        fmap.features[name] = spec
    common = dict(model_root=str(data_dir / "ckpt"), verbose=0, metrics=["AUC", "logloss"], optimizer="adam",
                  loss="binary_crossentropy", early_stop_patience=args["patience"])
    emb = args["embedding_dim"]

    class FuxiDIN(BaseModel):
        def __init__(self):
            super().__init__(fmap, model_id="DIN", **common)
            self.embedding_layer = FeatureEmbeddingDict(fmap, emb)
            width = emb * len(meta["sequences"])
            self.attention = DIN_Attention(width, attention_units=list(args["attention_hidden"]),
                                           hidden_activations="Dice")
            self.dnn = MLP_Block(input_dim=fmap.sum_emb_out_dim(), output_dim=1, hidden_units=list(args["hidden"]),
                                 hidden_activations="ReLU", output_activation=self.output_activation)
            self.compile(common["optimizer"], common["loss"], args["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            emb_dict = self.embedding_layer(X)
            targets = torch.cat([emb_dict[TARGETS[s]] for s in meta["sequences"]], dim=-1)
            history = torch.cat([emb_dict[s] for s in meta["sequences"]], dim=-1)
            mask = X[meta["sequences"][0]].long() != 0
            pooled = self.attention(targets, history, mask)
            for name, part in zip(meta["sequences"], pooled.split(emb, dim=-1), strict=True):
                emb_dict[name] = part
            return {"y_pred": self.dnn(self.embedding_layer.dict2tensor(emb_dict, flatten_emb=True))}

    class FuxiDeepFM(BaseModel):
        def __init__(self):
            super().__init__(fmap, model_id="DeepFM", **common)
            self.embedding_layer = FeatureEmbedding(fmap, emb)
            self.fm = FactorizationMachine(fmap)
            self.mlp = MLP_Block(input_dim=fmap.sum_emb_out_dim(), output_dim=1, hidden_units=list(args["hidden"]),
                                 hidden_activations="ReLU")
            self.compile(common["optimizer"], common["loss"], args["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            feature_emb = self.embedding_layer(X)
            y = self.fm(X, feature_emb) + self.mlp(feature_emb.flatten(start_dim=1))
            return {"y_pred": self.output_activation(y)}

    class FuxiDCNv2(BaseModel):
        def __init__(self):
            super().__init__(fmap, model_id="DCNv2", **common)
            self.embedding_layer = FeatureEmbedding(fmap, emb)
            dim = fmap.sum_emb_out_dim()
            self.crossnet = CrossNetV2(dim, args["cross_layers"])
            self.parallel_dnn = MLP_Block(input_dim=dim, output_dim=None, hidden_units=list(args["hidden"]),
                                          hidden_activations="ReLU")
            self.fc = torch.nn.Linear(dim + args["hidden"][-1], 1)
            self.compile(common["optimizer"], common["loss"], args["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs):
            X = self.get_inputs(inputs)
            x = self.embedding_layer(X, flatten_emb=True)
            y = self.fc(torch.cat([self.crossnet(x), self.parallel_dnn(x)], dim=-1))
            return {"y_pred": self.output_activation(y)}

    class Loader:
        def __init__(self, split: str, shuffle: bool):
            data = np.load(data_dir / f"{split}.npz")
            self.arrays = {k: torch.from_numpy(data[k]) for k in data.files}
            self.n = len(self.arrays["label"])
            self.shuffle = shuffle
            self.rng = np.random.default_rng(args["seed"])

        def __len__(self):
            return (self.n + args["batch_size"] - 1) // args["batch_size"]

        def __iter__(self):
            order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
            for s in range(0, self.n, args["batch_size"]):
                idx = torch.from_numpy(order[s:s + args["batch_size"]])
                yield {k: v[idx] for k, v in self.arrays.items()}

    model = {"din": FuxiDIN, "deepfm": FuxiDeepFM, "dcnv2": FuxiDCNv2}[model_name]()
    Path(model.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    train, valid, test = Loader("train", True), Loader("valid", False), Loader("test", False)
    if args.get("throughput_only"):
        model._max_gradient_norm = 10.0  # set by BaseModel.fit, read by train_step
        model.train()
        batches = iter(train)
        next(batches)
        start, cpu, rows = time.perf_counter(), time.process_time(), 0
        for _, batch in zip(range(args["throughput_batches"]), batches, strict=False):
            model.train_step(batch)
            rows += len(batch["label"])
        return {"rows_per_s": rows / (time.perf_counter() - start), "rows_per_cpu_s": rows / (time.process_time() - cpu)}
    start = time.perf_counter()
    model.fit(train, epochs=args["epochs"], validation_data=valid)
    seconds = time.perf_counter() - start
    pred = model.predict(test)
    np.save(data_dir / f"pred_fuxi_{model_name}.npy", pred)
    return {"train_seconds": seconds}


# --------------------------------------------------------------------------------------- our side
def write_fuxi_arrays(frames: dict, out: Path, max_len: int) -> dict:
    """Exact vocabularies (0 = padding) per field, shared by a sequence and its target; arrays per split."""
    import pandas as pd

    categorical = [c for c in ("user_id", "item_id", "cate", "brand") if c in frames["train"].columns]
    sequences = [s for s in SEQ_FIELDS if s in frames["train"].columns]
    vocab: dict[str, dict] = {}
    for name in categorical:
        values = set()
        for frame in frames.values():
            values |= set(frame[name].dropna().tolist())
            seq = next((s for s in sequences if TARGETS[s] == name), None)
            if seq:
                values |= {v for h in frame[seq] for v in h if not pd.isna(v)}
        vocab[name] = {v: i + 1 for i, v in enumerate(sorted(values, key=str))}
    for split, frame in frames.items():
        arrays = {name: np.array([vocab[name].get(v, 0) if not pd.isna(v) else 0 for v in frame[name]], np.int64)
                  for name in categorical}
        for seq in sequences:
            table = vocab[TARGETS[seq]]
            padded = np.zeros((len(frame), max_len), np.int64)
            for r, h in enumerate(frame[seq]):
                ids = [table.get(v, 0) if not pd.isna(v) else 0 for v in list(h)[-max_len:]]
                padded[r, :len(ids)] = ids
            arrays[seq] = padded
        arrays["label"] = frame["label"].to_numpy(np.float32)
        np.savez(out / f"{split}.npz", **arrays)
    meta = {"categorical": categorical, "sequences": sequences, "max_len": max_len,
            "vocab": {k: len(v) + 1 for k, v in vocab.items()}}
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


def our_throughput(model, frame, batch_size: int, n_batches: int) -> tuple[float, float]:
    """Rows per wall second and per CPU second of our training step (encoding done beforehand, as our trainer
    caches it)."""
    import torch

    from adpilot.rank.trainer import batches, optimizers_for, step

    enc, labels = model.encoder_.encode(frame), torch.from_numpy(frame[["label"]].to_numpy(np.float32))
    optimizers = optimizers_for(model.module_, model._train_config().learning_rate)
    model.module_.train()
    stream = batches(enc, np.random.default_rng(0).permutation(len(enc)), batch_size)
    index, inputs = next(stream)
    step(model.module_, optimizers, inputs, labels[index])  # warm-up
    start, cpu, rows = time.perf_counter(), time.process_time(), 0
    for _, (index, inputs) in zip(range(n_batches), stream, strict=False):
        step(model.module_, optimizers, inputs, labels[index])
        rows += len(index)
    return rows / (time.perf_counter() - start), rows / (time.process_time() - cpu)


def throughput_rounds(a: argparse.Namespace, fitted: dict, frame, work: Path, shared: dict) -> dict[str, list]:
    """(rows per wall second, rows per CPU second) per model and round, ours and FuxiCTR's measured one after the
    other, ``a.rounds`` times, so that both see the same machine (it is shared: a single measurement of each
    would compare two different loads)."""
    rates: dict[str, list[tuple[float, float]]] = {}
    fuxi_models = a.models.split(",")
    for _ in range(a.rounds):
        for name in dict.fromkeys([*fitted, *fuxi_models]):
            if name in fitted:
                rates.setdefault(f"ours {name}", []).append(
                    our_throughput(fitted[name], frame, a.batch_size, a.throughput_batches))
            if name in fuxi_models:
                run = [a.fuxi_python, __file__, "--fuxi-worker", str(work), name,
                       json.dumps({**shared, "throughput_only": True})]
                out = subprocess.run(run, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    print(f"FuxiCTR {name} throughput run failed:\n{out.stderr[-2000:]}")
                    continue
                result = json.loads(out.stdout.strip().splitlines()[-1])
                rates.setdefault(f"fuxictr {name}", []).append((result["rows_per_s"], result["rows_per_cpu_s"]))
    return rates


def head_copy(path: Path, lines: int, folder: Path) -> Path:
    """The first ``lines`` lines of an S3-Rec file ``<name>.txt[.gz]`` as ``<name>-head<lines>.txt`` in ``folder``,
    with ``<name>_item2attributes.json[.gz]`` linked beside it under the matching name."""
    import gzip
    import itertools

    name = path.name.removesuffix(".gz").removesuffix(".txt")
    attributes = next((p for p in (path.parent / f"{name}_item2attributes.json",
                                   path.parent / f"{name}_item2attributes.json.gz") if p.is_file()), None)
    if attributes is None:
        raise SystemExit(f"--head-lines needs an S3-Rec file with {name}_item2attributes.json(.gz) beside it")
    out = folder / f"{name}-head{lines}.txt"
    with (gzip.open(path, "rt") if path.name.endswith(".gz") else open(path)) as source:
        out.write_text("".join(itertools.islice(source, lines)))
    suffix = ".gz" if attributes.name.endswith(".gz") else ""
    (folder / f"{name}-head{lines}_item2attributes.json{suffix}").symlink_to(attributes.resolve())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, required=False)
    parser.add_argument("--head-lines", type=int, default=0,
                        help="S3-Rec file only: keep its first N users (N lines), e.g. 8000 for Beauty-8k")
    parser.add_argument("--fuxi-python", default="/tmp/fuxi-venv/bin/python")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-seq-len", type=int, default=30)
    parser.add_argument("--models", default="din,deepfm")
    parser.add_argument("--ours", default="din")
    parser.add_argument("--throughput-batches", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--throughput-only", action="store_true", help="skip the quality runs")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput rounds, ours and FuxiCTR alternating (the machine is shared and noisy)")
    parser.add_argument("--fuxi-worker", nargs=3, metavar=("DIR", "MODEL", "ARGS"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.fuxi_worker:
        print(json.dumps(fuxi_worker(Path(a.fuxi_worker[0]), a.fuxi_worker[1], json.loads(a.fuxi_worker[2]))))
        return
    import torch

    from adpilot.measure.metrics import auc
    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.metrics import bootstrap
    from adpilot.rank.readers import open_source

    torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_rank_fuxi_"))
    source = head_copy(a.train, a.head_lines, work) if a.head_lines else a.train
    frames = {role: open_source(source, role, None, a.seed).frame for role in ("train", "valid", "test")}
    test = frames["test"]
    y, users = test["label"].to_numpy(np.float64), test["user_id"].to_numpy()
    meta = write_fuxi_arrays(frames, work, a.max_seq_len)
    shared = {"embedding_dim": a.embedding_dim, "hidden": [128, 64], "attention_hidden": [64], "cross_layers": 3,
              "learning_rate": a.learning_rate, "batch_size": a.batch_size, "epochs": a.epochs, "patience": 2,
              "seed": a.seed, "threads": a.threads, "throughput_batches": a.throughput_batches}
    print(f"load average at start {os.getloadavg()}")
    print(f"task {source.name}: train {len(frames['train'])} rows, valid {len(frames['valid'])}, test {len(test)} "
          f"(features {meta['categorical'] + meta['sequences']})")
    cmd = " ".join(sys.argv)
    results: dict[str, np.ndarray] = {}
    timing: dict[str, float] = {}
    fitted = {}
    for name in a.ours.split(","):
        start = time.perf_counter()
        model = CTRModel(name, embedding_dim=a.embedding_dim, hidden=(128, 64), epochs=1 if a.throughput_only
                         else a.epochs, batch_size=a.batch_size, learning_rate=a.learning_rate,
                         max_seq_len=a.max_seq_len, seed=a.seed, threads=a.threads)
        model.fit(frames["train"].iloc[:4000] if a.throughput_only else frames["train"], frames["valid"])
        timing[f"ours {name}"] = time.perf_counter() - start
        if not a.throughput_only:
            results[f"ours {name}"] = model.predict_heads(test)[:, 0]
        fitted[name] = model
    for name in a.models.split(","):
        run = [a.fuxi_python, __file__, "--fuxi-worker", str(work), name, json.dumps(shared)]
        if not a.throughput_only:
            out = subprocess.run(run, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"FuxiCTR {name} failed:\n{out.stderr[-3000:]}")
                continue
            timing[f"fuxictr {name}"] = json.loads(out.stdout.strip().splitlines()[-1])["train_seconds"]
            results[f"fuxictr {name}"] = np.load(work / f"pred_fuxi_{name}.npy")
    rates = throughput_rounds(a, fitted, frames["train"].iloc[:200_000], work, shared)
    print(f"\ntest AUC with bootstrap 95% intervals (resampling users, {a.n_boot} resamples); command: {cmd}")
    for key, p in results.items():
        est = bootstrap(lambda i, p=p: auc(y[i], p[i]), len(y), users, a.n_boot, a.seed)
        print(f"  {key:18s} AUC {est}   train {timing[key]:.0f}s")
    for mine, ours in results.items():
        for key, p in results.items():
            if mine.startswith("ours") and key != mine:
                diff = bootstrap(lambda i, o=ours, p=p: auc(y[i], o[i]) - auc(y[i], p[i]), len(y), users, a.n_boot,
                                 a.seed)
                print(f"  {mine} - {key}: AUC difference {diff}")
    print(f"\ntraining throughput (rows of the training step per wall / CPU second, batch {a.batch_size}, "
          f"{a.threads} threads, {a.throughput_batches} batches per round, median of {a.rounds} alternating rounds):")
    for key, values in rates.items():
        wall, cpu = np.array(values).T
        print(f"  {key:16s} wall {np.median(wall):8.0f}  cpu {np.median(cpu):8.0f}   rounds wall "
              f"{[round(v) for v in wall]} cpu {[round(v) for v in cpu]}")
    for name in a.ours.split(","):
        peer_name = PEER.get(name, name)
        ours_r, peer = rates.get(f"ours {name}"), rates.get(f"fuxictr {peer_name}")
        if ours_r and peer and len(ours_r) == len(peer):
            for i, clock in enumerate(("wall", "cpu")):
                per_round = [o[i] / f[i] for o, f in zip(ours_r, peer, strict=True)]
                print(f"  ratio ours {name} / fuxictr {peer_name} ({clock}): {np.median(per_round):.2f}x "
                      f"(per round {min(per_round):.2f}-{max(per_round):.2f})")
    print(f"load average at end {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
