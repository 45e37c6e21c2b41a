"""``CTRModel``: the scikit-learn-like face of the rank room (``fit``, ``predict_proba``, ``save``, ``load``).

It wires the pieces that stay apart — reader, feature encoder, ``nn.Module``, trainer, calibration, model file —
and owns none of their logic.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias, TypeGuard

import numpy as np
import pandas as pd

from adpilot.errors import UserError, check_scalar
from adpilot.rank.base import FeatureSpec
from adpilot.rank.calibration import Calibrator, calibrate_heads, cvr_tower, fit_tower_calibrators
from adpilot.rank.checkpoint import load_arrays, save_arrays
from adpilot.rank.features import Encoded, FeatureEncoder
from adpilot.rank.models import REGISTRY, InputShape, ModelParams, build_model
from adpilot.rank.readers import LABEL_GUESSES, Source, open_source

Data: TypeAlias = pd.DataFrame | Source | str | Path
CACHE_ROWS = 3_000_000
"""Training sets up to this many rows are encoded once and reshuffled each epoch; larger ones are streamed."""


def _is_list(value: object) -> TypeGuard[list | tuple | np.ndarray]:
    return isinstance(value, list | tuple | np.ndarray)


def infer_spec(frame: pd.DataFrame, labels: tuple[str, ...], drop: tuple[str, ...] = (), max_buckets: int = 2**20,
               max_seq_len: int = 50) -> FeatureSpec:
    """Sort columns into kinds by their values: float lists -> vectors, other lists -> sequences (``hist_X``
    pairs with ``X``, ``recent_items`` with ``item_id``/``product_id``/``ad_id``), floats -> dense, the rest ->
    categorical; label-like names (``click``, ``conversion``, ...) are never features. Buckets per field: a power of two >= 4x the distinct values seen (so unseen values rarely
    collide), within [16, ``max_buckets``]."""
    categorical, sequences, dense, vectors = [], [], [], []
    skip = {*labels, *drop, *LABEL_GUESSES}  # another label column is an outcome, never a feature
    for name in sorted(c for c in frame.columns if c not in skip):
        col = frame[name]
        first = next((v for v in col if _is_list(v) or not pd.isna(v)), None)
        if _is_list(first):
            items = [x for v in col.head(1000) if _is_list(v) for x in v]
            if items and all(isinstance(x, float | np.floating) for x in items[:100]):
                vectors.append((name, len(first)))
                continue
            target = name[5:] if name.startswith("hist_") else next(
                (t for t in ("item_id", "product_id", "ad_id") if name == "recent_items" and t in frame.columns), "")
            if target in frame.columns:
                sequences.append((name, target))
        elif pd.api.types.is_float_dtype(col):
            dense.append(name)
        else:
            categorical.append(name)
    buckets = {}
    for name in categorical:
        values = set(frame[name].dropna().astype(str))
        for seq, target in sequences:
            if target == name:
                values |= {str(x) for v in frame[seq] if _is_list(v) for x in v}
        want = 1 << int(np.ceil(np.log2(max(4 * len(values), 16))))
        buckets[name] = int(min(want, max_buckets))
    return FeatureSpec(tuple(categorical), tuple(sequences), tuple(dense), tuple(vectors), buckets,
                       max_seq_len=max_seq_len)


def label_matrix(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise UserError(f"label column `{missing[0]}` is missing (columns: {sorted(frame.columns)[:20]})")
    y = frame[list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    if np.isnan(y).any():
        raise UserError(f"label column `{names[int(np.isnan(y).any(0).argmax())]}` has missing or non-numeric values")
    if ((y != 0) & (y != 1)).any():
        raise UserError(f"labels must be 0 or 1, got values {sorted(set(np.unique(y)) - {0.0, 1.0})[:5]}")
    return y


class CTRModel:
    """Click/conversion model with hashed features, early stopping on validation AUC and calibration.

    Parameters are configuration only (scikit-learn style); learned state ends in ``_``. ``labels`` names the
    label column(s): one for single-task models, (click, conversion) for ``esmm``; ``None`` guesses one.
    ``learning_rate=None`` takes the model's own default. ``cross_rank`` 32 (DCN-v2's low-rank cross, 0 = full
    rank): the same AUC on Amazon Beauty (full file, 3 seeds: +0.0025 [-0.0021, +0.0070] vs full rank;
    ``benchmarks/bench_rank_serving_variants.py``) at 0.75x the serving time.
    """

    def __init__(self, model: str = "dcnv2", *, embedding_dim: int = 16, hidden: tuple[int, ...] = (128, 64),
                 dropout: float = 0.0, cross_layers: int = 3, attention_hidden: tuple[int, ...] = (64,),
                 cross_rank: int = 32, attention_heads: int = 2,
                 epochs: int = 10, batch_size: int = 1024, learning_rate: float | None = None, embedding_l2: float = 0.0,
                 patience: int = 2, calibration: str = "platt", labels: tuple[str, ...] | None = None,
                 drop: tuple[str, ...] = (), max_buckets: int = 2**20, max_seq_len: int = 50,
                 valid_fraction: float = 0.1, seed: int = 0, threads: int = 1) -> None:
        self.model = model
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.dropout = dropout
        self.cross_layers = cross_layers
        self.cross_rank = cross_rank
        self.attention_heads = attention_heads
        self.attention_hidden = attention_hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.embedding_l2 = embedding_l2
        self.patience = patience
        self.calibration = calibration
        self.labels = labels
        self.drop = drop
        self.max_buckets = max_buckets
        self.max_seq_len = max_seq_len
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.threads = threads

    # -- configuration -------------------------------------------------------------------------------------
    def _model_params(self) -> ModelParams:
        return ModelParams(self.embedding_dim, tuple(self.hidden), self.dropout, self.cross_layers,
                           tuple(self.attention_hidden), self.cross_rank, self.attention_heads, self.max_seq_len)

    def _train_config(self):  # noqa: ANN202 - TrainConfig, imported lazily with torch
        from adpilot.rank.trainer import TrainConfig

        rate = self.learning_rate if self.learning_rate is not None else REGISTRY[self.model].learning_rate
        return TrainConfig(self.epochs, self.batch_size, rate, self.embedding_l2, self.patience,
                           self.seed).validate()

    def _validate(self) -> None:
        if self.model not in REGISTRY:
            raise UserError(f"`model` must be one of {sorted(REGISTRY)}, got {self.model!r}")
        self._model_params().validate()
        try:
            check_scalar(self.valid_fraction, "valid_fraction", gt=0, lt=1)
            check_scalar(self.threads, "threads", ge=1)
            check_scalar(self.max_seq_len, "max_seq_len", ge=1)
            check_scalar(self.max_buckets, "max_buckets", ge=16)
        except ValueError as error:
            raise UserError(str(error)) from None
        if self.calibration not in ("platt", "isotonic", "none"):
            raise UserError(f"`calibration` must be one of ['platt', 'isotonic', 'none'], got {self.calibration!r}")

    def _source(self, data: Data, role: str) -> Source:
        if isinstance(data, Source):
            return data
        if isinstance(data, pd.DataFrame):
            labels = self.labels or next(((g,) for g in ("label", "click", "is_attributed") if g in data), ("label",))
            group = "user_id" if "user_id" in data.columns else None
            return Source(Path("<frame>"), "frame", tuple(labels), group, data)
        return open_source(data, role, self.labels, self.seed)  # type: ignore[arg-type]

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, train: Data, valid: Data | None = None) -> CTRModel:
        """Train on ``train``; validate on ``valid`` or, if absent, on the held-out role of a sequence file or
        the last ``valid_fraction`` of the rows (files are read in time order)."""
        import torch

        from adpilot.rank import trainer

        self._validate()
        config = self._train_config()
        torch.set_num_threads(self.threads)
        source = self._source(train, "train")
        heads = REGISTRY[self.model].heads
        if len(source.labels) != len(heads):
            raise UserError(f"model `{self.model}` needs {len(heads)} label column(s) ({', '.join(heads)}), "
                            f"got {list(source.labels)}: pass --label " + ",".join(heads))
        head = next(source.frames(200_000))
        self.spec_ = infer_spec(head, source.labels, self.drop, self.max_buckets, self.max_seq_len)
        cutoff = None
        if valid is not None:
            valid_source = self._source(valid, "valid")
        elif source.kind == "sequence" and not isinstance(train, Source | pd.DataFrame):
            valid_source = open_source(train, "valid", self.labels, self.seed)
        else:
            cutoff = int(source.n_rows() * (1 - self.valid_fraction))
            valid_source = None
        self.encoder_ = FeatureEncoder(self.spec_).fit_dense(f for f, _ in self._rows(source, 0, cutoff))
        valid_frames = (list(self._rows(valid_source, 0, None)) if valid_source is not None
                        else list(self._rows(source, cutoff, None)))
        valid_frame = pd.concat([f for f, _ in valid_frames]) if valid_frames else head.iloc[:0]
        valid_data = (self.encoder_.encode(valid_frame), label_matrix(valid_frame, source.labels)) if len(
            valid_frame) else None
        chunks = self._chunks(source, cutoff)
        self.labels_ = source.labels
        self.group_ = source.group
        self.shape_ = InputShape(self.encoder_.n_rows_, len(self.spec_.categorical),
                                 tuple(self.encoder_.field_index_[t] for _, t in self.spec_.sequences),
                                 tuple(d for _, d in self.spec_.vectors), len(self.spec_.dense))
        with torch.random.fork_rng(devices=[]):  # seeded init and dropout without touching the caller's RNG
            torch.manual_seed(self.seed)
            self.module_ = build_model(self.model, self.shape_, self._model_params())
            self.module_.set_prior(self._base_rates(chunks))
            self.result_ = trainer.fit(self.module_, chunks, valid_data, config)
        self.calibrators_ = [Calibrator()] * len(heads)
        if valid_data is not None:
            probs = trainer.predict(self.module_, valid_data[0])
            self.calibrators_ = fit_tower_calibrators(valid_data[1], probs, self.calibration)
            self.valid_report_ = {"raw": probs, "labels": valid_data[1]}
        return self

    def _base_rates(self, chunks) -> list[float]:  # noqa: ANN001 - trainer.Chunks
        """Per-head positive rate of the training labels (ESMM's second head: conversions among clicks);
        a label without positives is a :class:`UserError`."""
        y = np.concatenate([labels for _, labels in chunks(0)])
        if len(y) == 0:
            raise UserError("the training data holds no rows")
        if (y.max(0) == 0).any():
            raise UserError(f"every training label in `{self.labels_[int((y.max(0) == 0).argmax())]}` is 0: "
                            "there is nothing to learn (AUC is undefined)")
        if y.shape[1] == 2:
            return [float(y[:, 0].mean()), float(y[:, 1].sum() / max(y[:, 0].sum(), 1))]
        return [float(y[:, 0].mean())]

    def _rows(self, source: Source, start: int | None, stop: int | None) -> Iterator[tuple[pd.DataFrame, int]]:
        """Frames of rows ``[start, stop)`` of the source, with each frame's first row number."""
        position = 0
        for frame in source.frames():
            lo, hi = position, position + len(frame)
            position = hi
            if stop is not None and lo >= stop:
                return
            a = max((start or 0) - lo, 0)
            b = len(frame) if stop is None else min(stop - lo, len(frame))
            if a < b:
                yield frame.iloc[a:b], lo + a

    def _chunks(self, source: Source, cutoff: int | None):  # noqa: ANN202 - trainer.Chunks
        """The trainer's data: encoded once when small enough, else re-read from the file each epoch."""
        def encode_all() -> Iterator[tuple[Encoded, np.ndarray]]:
            for frame, _ in self._rows(source, 0, cutoff):
                y = label_matrix(frame, source.labels)
                yield self.encoder_.encode(frame), y

        if (cutoff or source.n_rows()) > CACHE_ROWS:
            return lambda epoch: encode_all()
        cached = list(encode_all())
        return lambda epoch: cached

    # -- prediction ----------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise UserError("this CTRModel is not fitted yet: call fit() or CTRModel.load(path)")

    def predict_raw(self, data: Data) -> np.ndarray:
        """The model's probabilities before calibration ``[n, n_heads]``: (p) or, for ESMM, (pCTR, pCTCVR)."""
        from adpilot.rank.trainer import predict

        self._check_fitted()
        source = self._source(data, "test")
        parts = [predict(self.module_, self.encoder_.encode(frame)) for frame in source.frames()]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.calibrators_)))

    def predict_heads(self, data: Data) -> np.ndarray:
        """Calibrated probabilities ``[n, n_heads]``: (pCTR) or, for ESMM, (pCTR, pCTCVR = pCTR * pCVR)."""
        return calibrate_heads(self.calibrators_, self.predict_raw(data))

    def predict_cvr(self, data: Data) -> np.ndarray:
        """ESMM's calibrated pCVR = P(conversion | click) per row, as the scorer serves it."""
        if len(REGISTRY[self.model].heads) != 2:
            raise UserError(f"model `{self.model}` has no conversion head: train `esmm` for pCVR")
        return self.calibrators_[1].apply(cvr_tower(self.predict_raw(data)))

    def predict_proba(self, data: Data) -> np.ndarray:
        """scikit-learn layout ``[n, 2]``: column 1 is the probability of the (first) label."""
        p = self.predict_heads(data)[:, 0]
        return np.stack([1 - p, p], axis=1)

    # -- persistence ---------------------------------------------------------------------------------------
    def get_params(self) -> dict[str, object]:
        """Constructor arguments, as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def save(self, path: str | Path) -> Path:
        """One ``.npz``: numpy weights + JSON header; :func:`adpilot.rank.scorer.load_scorer` reads it too."""
        self._check_fitted()
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()}
        header = {"params": params, "kind": self.model, "spec": self.spec_.to_dict(), "labels": list(self.labels_),
                  "group": self.group_, "shape": dataclasses.asdict(self.shape_),
                  "calibrators": [c.to_dict() for c in self.calibrators_], "tower_calibration": True,
                  "heads": list(REGISTRY[self.model].heads)}
        weights = {f"w/{k}": v.detach().numpy() for k, v in self.module_.state_dict().items()}
        return save_arrays(path, header, {**weights, **{f"enc/{k}": v for k, v in self.encoder_.state().items()}})

    @classmethod
    def load(cls, path: str | Path) -> CTRModel:
        import torch

        header, arrays = load_arrays(path)
        params: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in header["params"].items()}
        self = cls(**params)
        self.spec_ = FeatureSpec.from_dict(header["spec"])
        self.encoder_ = FeatureEncoder(self.spec_).load_state({k[4:]: v for k, v in arrays.items()
                                                              if k.startswith("enc/")})
        shape = header["shape"]
        self.shape_ = InputShape(shape["n_rows"], shape["n_fields"], tuple(shape["seq_targets"]),
                                 tuple(shape["vector_dims"]), shape["n_dense"])
        self.module_ = build_model(self.model, self.shape_, self._model_params())
        state = {k[2:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("w/")}
        try:
            self.module_.load_state_dict(state)
        except RuntimeError as error:
            raise UserError(f"{path} does not match this adpilot's `{self.model}` layout "
                            f"({str(error).splitlines()[0]}): retrain it with `adpilot train ctr`") from None
        self.module_.eval()
        self.labels_ = tuple(header["labels"])
        self.group_ = header["group"]
        self.calibrators_ = [Calibrator.from_dict(c) for c in header["calibrators"]]
        return self
