"""The training loop, and nothing else: mini-batch Adam, early stopping on validation AUC, best weights kept.

Data arrives as an iterable of encoded chunks per epoch (a file streamed in record batches, or one chunk held in
memory), so the loop never needs the whole file. Seeds are parameters: the same seed gives the same model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from adpilot.errors import UserError, check_scalar
from adpilot.measure.metrics import auc
from adpilot.rank.features import Encoded
from adpilot.rank.models import RankModel

Chunks = Callable[[int], Iterable[tuple[Encoded, np.ndarray]]]
"""``chunks(epoch)`` yields (inputs, labels ``[n, n_heads]``) pieces of the training data for that epoch."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 1e-3
    embedding_l2: float = 0.0
    patience: int = 2
    seed: int = 0

    def validate(self) -> TrainConfig:
        try:
            check_scalar(self.epochs, "epochs", ge=1)
            check_scalar(self.batch_size, "batch_size", ge=1)
            check_scalar(self.learning_rate, "learning_rate", gt=0)
            check_scalar(self.embedding_l2, "embedding_l2", ge=0)
            check_scalar(self.patience, "patience", ge=0)
        except ValueError as error:
            raise UserError(str(error)) from None
        return self


@dataclass
class TrainResult:
    best_epoch: int = -1
    best_auc: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)


def tensors(enc: Encoded) -> tuple[torch.Tensor, ...]:
    """Model inputs as tensors, sharing memory with the numpy arrays."""
    return (torch.from_numpy(enc.ids), torch.from_numpy(enc.seqs), torch.from_numpy(enc.dense),
            torch.from_numpy(enc.vectors))


def batches(enc: Encoded, order: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
    """(row index, inputs) per mini-batch of ``order``: the chunk becomes tensors once and each batch is a
    ``index_select`` of them (no numpy fancy indexing or per-batch conversion in the hot loop)."""
    whole = tensors(enc)
    order_t = torch.from_numpy(order)
    for start in range(0, len(order), batch_size):
        index = order_t[start:start + batch_size]
        yield index, tuple(t.index_select(0, index) for t in whole)


@torch.no_grad()
def predict(model: RankModel, enc: Encoded, batch_size: int = 8192) -> np.ndarray:
    """Per-head probabilities ``[n, n_heads]`` (float64)."""
    model.eval()
    out = [model.probabilities(model(*tensors(enc.take(slice(s, s + batch_size))))).double().numpy()
           for s in range(0, len(enc), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(model.heads)))


def validation_auc(model: RankModel, enc: Encoded, labels: np.ndarray) -> float:
    """Mean AUC over heads whose labels have both classes (NaN if none does)."""
    probs = predict(model, enc)
    aucs = [auc(labels[:, h], probs[:, h]) for h in range(labels.shape[1]) if 0 < labels[:, h].sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def optimizers_for(model: RankModel, learning_rate: float) -> list[torch.optim.Optimizer]:
    """Lazy Adam for sparse embedding tables, Adam for the dense rest."""
    sparse = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]
    ids = {id(p) for p in sparse}
    dense = [p for p in model.parameters() if id(p) not in ids]
    out: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=learning_rate, fused=True)] if dense else []
    return out + ([torch.optim.SparseAdam(sparse, lr=learning_rate)] if sparse else [])


def step(model: RankModel, optimizers: list[torch.optim.Optimizer], inputs: tuple[torch.Tensor, ...],
         labels: torch.Tensor, embedding_l2: float = 0.0) -> float:
    """One Adam step on one mini-batch; returns its loss."""
    loss = model.loss(model(*inputs), labels)
    if embedding_l2 > 0:
        rows = torch.unique(torch.cat([inputs[0].flatten(), inputs[1].flatten()]))
        loss = loss + embedding_l2 * model.inputs.embedding(rows).pow(2).sum() / len(labels)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()
    return float(loss.detach())


def fit(model: RankModel, chunks: Chunks, valid: tuple[Encoded, np.ndarray] | None, config: TrainConfig,
        on_epoch: Callable[[int, RankModel, float], None] | None = None) -> TrainResult:
    """Train ``model`` in place; with ``valid``, stop after ``patience`` epochs without a better AUC and keep
    the best weights. Torch's generator (dropout) is the caller's to seed; batches are shuffled with
    ``config.seed``."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    optimizers = optimizers_for(model, config.learning_rate)
    result, best_state, stale = TrainResult(), None, 0
    for epoch in range(config.epochs):
        model.train()
        total, seen = 0.0, 0
        for enc, labels in chunks(epoch):
            y_all = torch.from_numpy(labels.astype(np.float32))
            for index, inputs in batches(enc, rng.permutation(len(enc)), config.batch_size):
                total += step(model, optimizers, inputs, y_all[index], config.embedding_l2) * len(index)
                seen += len(index)
        if seen == 0:
            raise UserError("the training data holds no rows")
        score = validation_auc(model, *valid) if valid is not None else float("nan")
        result.history.append({"epoch": epoch, "train_loss": total / seen, "valid_auc": score})
        if on_epoch is not None:
            on_epoch(epoch, model, score)
        if valid is None or np.isnan(score):
            result.best_epoch = epoch
            continue
        if np.isnan(result.best_auc) or score > result.best_auc + 1e-5:
            result.best_auc, result.best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale > config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result
