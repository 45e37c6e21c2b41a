"""Numpy forward passes of the registry's models, for serving without torch.

Each function mirrors a layer of :mod:`adpilot.rank.layers` or a model of :mod:`adpilot.rank.models` and reads
the same parameter names as the torch ``state_dict``; ``tests/rank`` checks the two agree to 1e-5 for every
registered model. Returns logits ``[batch, n_heads]``.
"""

from __future__ import annotations

import re

import numpy as np

from adpilot.rank.features import Encoded

Weights = dict[str, np.ndarray]


def linear(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    """``[..., in] -> [..., out]`` (leading axes folded into one, so BLAS does one 2-d product)."""
    y = (x.reshape(-1, x.shape[-1]) @ w[f"{prefix}.weight"].T).reshape(*x.shape[:-1], -1)
    bias = w.get(f"{prefix}.bias")
    return y + bias if bias is not None else y


def mlp(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    """Linear + ReLU per hidden layer (dropout is the identity at inference)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.net\.(\d+)\.weight$")
    for k in sorted(int(m.group(1)) for key in w if (m := pattern.match(key))):
        x = np.maximum(linear(w, f"{prefix}.net.{k}", x), 0.0)
    return x


def fm(emb: np.ndarray) -> np.ndarray:
    """``[batch, fields, dim] -> [batch, 1]``."""
    return 0.5 * (emb.sum(1) ** 2 - (emb**2).sum(1)).sum(1, keepdims=True)


def cross(w: Weights, prefix: str, x0: np.ndarray) -> np.ndarray:
    x, i = x0, 0
    while f"{prefix}.layers.{i}.weight" in w:
        x = x0 * linear(w, f"{prefix}.layers.{i}", x) + x
        i += 1
    return x


def masked_mean(seq: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(seq.dtype)[..., None]
    return (seq * weights).sum(1) / np.maximum(weights.sum(1), 1.0)


def target_attention(w: Weights, prefix: str, query: np.ndarray, keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The first layer by parts, as in the torch layer: ``(W_q + W_d) q + (W_k - W_d) k + W_p (q*k)``."""
    first = w[f"{prefix}.first.weight"]
    w_q, w_k, w_d, w_p = np.split(first, 4, axis=1)
    q_part = query @ (w_q + w_d).T + w[f"{prefix}.first.bias"]
    k_part = keys @ (w_k - w_d).T + (query[:, None, :] * keys) @ w_p.T
    hidden = mlp(w, f"{prefix}.rest", np.maximum(k_part + q_part[:, None, :], 0.0))
    weights = linear(w, f"{prefix}.score", hidden)[..., 0] * mask
    return (weights[..., None] * keys).sum(1)


def target_attention_shared(w: Weights, prefix: str, query: np.ndarray, keys: np.ndarray,
                            mask: np.ndarray) -> np.ndarray:
    """:func:`target_attention` when every row has the same history (one user, many candidate ads):
    ``query [n, dim], keys [len, dim], mask [len] -> [n, dim]``, with the key parts computed once and the
    bilinear ``W_p (q*k)`` term as one matrix product."""
    first = w[f"{prefix}.first.weight"]
    w_q, w_k, w_d, w_p = np.split(first, 4, axis=1)
    n, dim = query.shape
    q_part = query @ (w_q + w_d).T + w[f"{prefix}.first.bias"]  # [n, H]
    k_part = keys @ (w_k - w_d).T  # [len, H]
    scaled = (query.T[:, :, None] * w_p.T[:, None, :]).reshape(dim, -1)  # [dim, n*H]
    bilinear = (keys @ scaled).reshape(len(keys), n, -1)  # [len, n, H]
    hidden = mlp(w, f"{prefix}.rest", np.maximum(bilinear + k_part[:, None] + q_part[None], 0.0))
    weights = linear(w, f"{prefix}.score", hidden)[..., 0] * mask[:, None]  # [len, n]
    return weights.T @ keys


class NumpyModel:
    """Logits of a saved model from numpy weights; ``kind`` is the registry name."""

    def __init__(self, kind: str, weights: Weights, seq_targets: tuple[int, ...], vector_dims: tuple[int, ...]):
        self.kind = kind
        self.w = {k: v.astype(np.float32) for k, v in weights.items()}
        self.seq_targets = seq_targets
        self.vector_dims = vector_dims

    def _fields(self, enc: Encoded) -> np.ndarray:
        parts = [self.w["inputs.embedding.weight"][enc.ids]]
        start = 0
        for i, dim in enumerate(self.vector_dims):
            parts.append(linear(self.w, f"inputs.projections.{i}", enc.vectors[:, start:start + dim])[:, None, :])
            start += dim
        return np.concatenate(parts, axis=1)

    def _sequence(self, enc: Encoded) -> tuple[np.ndarray, np.ndarray]:
        """``[batch, L, S*dim]`` and mask ``[batch, L]``; batch is 1 when every row has the same history."""
        seqs = enc.seqs[:1] if (enc.seqs == enc.seqs[:1]).all() else enc.seqs
        emb = self.w["inputs.embedding.weight"][seqs]  # [batch, S, L, dim]
        batch, n_seq, length, dim = emb.shape
        return emb.transpose(0, 2, 1, 3).reshape(batch, length, n_seq * dim), seqs[:, 0] > 0

    def _tokens(self, enc: Encoded) -> np.ndarray:
        fields = self._fields(enc)
        if not self.seq_targets:
            return fields
        seq, mask = self._sequence(enc)
        pooled = masked_mean(seq, mask).reshape(seq.shape[0], len(self.seq_targets), -1)
        return np.concatenate([fields, np.broadcast_to(pooled, (len(fields), *pooled.shape[1:]))], axis=1)

    def _first_order(self, enc: Encoded) -> np.ndarray:
        return self.w["inputs.weight.weight"][enc.ids].sum(1) + enc.dense @ self.w["inputs.dense_weight"]

    def logits(self, enc: Encoded) -> np.ndarray:
        return self._logits(enc) + self.w["bias"]

    def _logits(self, enc: Encoded) -> np.ndarray:
        w = self.w
        if self.kind == "lr":
            return self._first_order(enc) + enc.vectors @ w["vector_weight"]
        tokens = self._tokens(enc)
        flat = np.concatenate([tokens.reshape(len(tokens), -1), enc.dense], axis=1)
        if self.kind == "deepfm":
            return self._first_order(enc) + fm(tokens) + linear(w, "out", mlp(w, "mlp", flat))
        if self.kind == "dcnv2":
            return linear(w, "out", np.concatenate([cross(w, "cross", flat), mlp(w, "mlp", flat)], axis=1))
        if self.kind == "din":
            parts = [flat]
            if self.seq_targets:
                seq, mask = self._sequence(enc)
                query = tokens[:, list(self.seq_targets)].reshape(len(tokens), -1)
                attended = (target_attention_shared(w, "attention", query, seq[0], mask[0]) if len(seq) == 1
                            else target_attention(w, "attention", query, seq, mask))
                parts += [attended, query * attended]
            return self._first_order(enc) + linear(w, "out", mlp(w, "mlp", np.concatenate(parts, axis=1)))
        if self.kind == "esmm":
            return np.concatenate([linear(w, "ctr_out", mlp(w, "ctr", flat)),
                                   linear(w, "cvr_out", mlp(w, "cvr", flat))], axis=1)
        raise ValueError(f"no numpy forward for model kind {self.kind!r}")
