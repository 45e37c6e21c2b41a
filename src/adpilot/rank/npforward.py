"""Numpy forward passes of the registry's models, for serving without torch.

The forward mirrors :mod:`adpilot.rank.models` and reads the same parameter names as the torch ``state_dict``;
``tests/rank`` checks the two agree to 1e-5 for every registered model. It is organised for the serving shape —
one request, many candidates — where most inputs (the user's fields, history and vector, the context) are the
same for every candidate. A :class:`Plan` says which inputs vary per row; everything that does not is computed
once per request and enters the first layer of each network as a constant vector:

* MLP first layers: ``W x + b = (W_c x_c + b) + W_v x_v``; only the varying columns are multiplied per row.
* DCN-v2 cross network: coordinates are permuted so the constant ones come first; the first layer uses the split
  above, and the last layer is folded into the output, ``w . x_L = x_{L-1} . (W^T (w * x0)) + (w * x0) . b +
  w . x_{L-1}``, where ``W^T (w * x0)`` again splits into a constant and a varying-columns product.
* DCN-v2 with low-rank cross matrices (``cross_rank > 0``): ``U (V^T x)`` per layer in the same permuted
  coordinates, the first ``V^T x0`` split as above.
* DIN attention over one shared history: the bilinear ``W_p (q * k)`` term, the key part and the query part
  become one matrix product ``[q, 1] @ R`` with ``R`` built per request from the history (the history is
  short; the candidates are many), then ReLU and the score layer.
* BST: the transformer block runs over the one history once per request; the candidate's scaled dot product
  uses keys ``H W_q`` prepared with it, so per candidate ``q @ K^T`` ``[n, dim] x [dim, L]``, a softmax and
  ``weights @ H`` remain.

All arrays are float32 and contiguous; the few plans a server sees are cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from adpilot.rank.features import Encoded

Weights = dict[str, np.ndarray]


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def mlp_layers(w: Weights, prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight transposed ``[in, out]``, bias) of each Linear of an :class:`~adpilot.rank.layers.MLP`."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.net\.(\d+)\.weight$")
    ks = sorted(int(m.group(1)) for key in w if (m := pattern.match(key)))
    return [(_f32(w[f"{prefix}.net.{k}.weight"].T), _f32(w[f"{prefix}.net.{k}.bias"])) for k in ks]


def _relu(x: np.ndarray) -> np.ndarray:
    """ReLU in place (the argument is a fresh product nobody else holds)."""
    return np.maximum(x, 0.0, out=x)


def run_mlp(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Linear + ReLU per layer (dropout is the identity at inference), in place after the first product."""
    for weight_t, bias in layers:
        x = x @ weight_t
        x += bias
        np.maximum(x, 0.0, out=x)
    return x


@dataclass(frozen=True)
class Plan:
    """Which inputs vary per row: categorical fields, vector fields and dense columns by index, and whether the
    sequences do (a shared history is the serving case)."""

    fields: tuple[int, ...]
    vectors: tuple[int, ...]
    dense: tuple[int, ...]
    sequences: bool


class SplitLinear:
    """``x @ W.T + b`` for ``x = [x_c (same for every row), x_v (per row)]`` given by column indices."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, const: np.ndarray, varying: np.ndarray):
        self.w_c = _f32(weight[:, const])
        self.w_v_t = _f32(weight[:, varying].T)
        self.bias = _f32(bias if bias is not None else np.zeros(weight.shape[0]))

    def constant(self, x_c: np.ndarray) -> np.ndarray:
        return self.w_c @ x_c + self.bias

    def __call__(self, x_c: np.ndarray, x_v: np.ndarray) -> np.ndarray:
        out = x_v @ self.w_v_t
        out += self.constant(x_c)
        return out


class NumpyModel:
    """Logits of a saved model from numpy weights; ``kind`` is the registry name."""

    def __init__(self, kind: str, weights: Weights, seq_targets: tuple[int, ...], vector_dims: tuple[int, ...],
                 n_fields: int, n_dense: int) -> None:
        if kind not in ("lr", "deepfm", "dcnv2", "din", "bst", "esmm", "escm2"):
            raise ValueError(f"no numpy forward for model kind {kind!r}")
        self.kind = kind
        self.w = {k: _f32(v) for k, v in weights.items()}
        self.seq_targets = seq_targets
        self.vector_dims = vector_dims
        self.n_fields = n_fields
        self.n_dense = n_dense
        self.table = self.w["inputs.embedding.weight"]
        self.first_weight = self.w["inputs.weight.weight"][:, 0].copy()
        self.dim = self.table.shape[1]
        self.proj = [(self.w[f"inputs.projections.{i}.weight"].T.copy(), self.w[f"inputs.projections.{i}.bias"])
                     for i in range(len(vector_dims))]
        self.vec_start = np.concatenate([[0], np.cumsum(vector_dims)]).astype(int)
        self.attention_rest = mlp_layers(self.w, "attention.rest")
        self.attention_ffn = mlp_layers(self.w, "attention.ffn")
        self._bst = self._bst_weights() if kind == "bst" else {}
        self._plans: dict[Plan, dict] = {}

    # -- inputs --------------------------------------------------------------------------------------------
    def all_varying(self) -> Plan:
        return Plan(tuple(range(self.n_fields)), tuple(range(len(self.vector_dims))), tuple(range(self.n_dense)),
                    True)

    def _token_columns(self, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """Flat input columns (tokens ``[fields, vectors, pooled sequences]`` then dense) that are constant
        and that vary, each in increasing order."""
        n_tok = self.n_fields + len(self.vector_dims) + len(self.seq_targets)
        varying_tok = ([*plan.fields] + [self.n_fields + v for v in plan.vectors]
                       + ([self.n_fields + len(self.vector_dims) + s for s in range(len(self.seq_targets))]
                          if plan.sequences else []))
        flags = np.zeros(n_tok * self.dim + self.n_dense, bool)
        for t in varying_tok:
            flags[t * self.dim:(t + 1) * self.dim] = True
        flags[n_tok * self.dim + np.asarray(plan.dense, int)] = True
        return np.flatnonzero(~flags), np.flatnonzero(flags)

    def _pooled(self, seqs: np.ndarray) -> np.ndarray:
        """Mean embedding over valid positions: ``[rows, S, L] -> [rows, S*dim]``."""
        valid = seqs[:, 0] > 0
        emb = self.table[seqs] * valid[:, None, :, None]
        return (emb.sum(2) / np.maximum(valid.sum(1), 1)[:, None, None]).reshape(len(seqs), -1)

    def _parts(self, plan: Plan, ids: np.ndarray, seqs: np.ndarray, dense: np.ndarray,
               vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Flat inputs split into the constant part ``x_c`` (from row 0) and the varying part ``x_v [n, .]``,
        each in flat column order; also how many leading columns of each are token embeddings."""
        n = len(ids)
        p = self._plan(plan)
        pooled = self._pooled(seqs[:1] if not plan.sequences else seqs) if self.seq_targets else None
        c_parts = [self.table[ids[0, p["const_fields"]]].ravel()]
        c_parts += [self._project(v, vectors[:1])[0] for v in p["const_vectors"]]
        if pooled is not None and not plan.sequences:
            c_parts.append(pooled[0])
        c_tok = sum(len(p) for p in c_parts)
        c_parts.append(dense[0, p["const_dense"]])
        v_parts = [self.table[ids[:, p["fields"]]].reshape(n, -1)]
        v_parts += [self._project(v, vectors) for v in plan.vectors]
        if pooled is not None and plan.sequences:
            v_parts.append(pooled)
        n_tok = sum(p.shape[1] for p in v_parts)
        v_parts.append(dense[:, p["dense"]])
        return np.concatenate(c_parts), np.concatenate(v_parts, axis=1), c_tok, n_tok

    def _project(self, v: int, vectors: np.ndarray) -> np.ndarray:
        weight_t, bias = self.proj[v]
        return vectors[:, self.vec_start[v]:self.vec_start[v + 1]] @ weight_t + bias

    def _first_order(self, ids: np.ndarray, dense: np.ndarray) -> np.ndarray:
        return self.first_weight[ids].sum(1, keepdims=True) + dense @ self.w["inputs.dense_weight"]

    # -- plans ---------------------------------------------------------------------------------------------
    def _plan(self, plan: Plan) -> dict:
        if plan not in self._plans:
            if len(self._plans) > 16:
                self._plans.clear()
            self._plans[plan] = self._compile(plan)
        return self._plans[plan]

    def _compile(self, plan: Plan) -> dict:
        """Weights rearranged for ``plan``: split first layers, and for DCN-v2 the permuted cross network."""
        w = self.w
        const, varying = self._token_columns(plan)
        out: dict = {"const": const, "varying": varying, "fields": list(plan.fields), "dense": list(plan.dense),
                     "const_fields": [f for f in range(self.n_fields) if f not in plan.fields],
                     "const_vectors": [v for v in range(len(self.vector_dims)) if v not in plan.vectors],
                     "const_dense": [d for d in range(self.n_dense) if d not in plan.dense]}

        def split(prefix: str, extra: int = 0) -> tuple[SplitLinear, list]:
            layers = mlp_layers(w, prefix)
            first_w = w[f"{prefix}.net.0.weight"]
            tail = np.arange(len(const) + len(varying), len(const) + len(varying) + extra)
            return SplitLinear(first_w, w[f"{prefix}.net.0.bias"], const, np.concatenate([varying, tail])), layers[1:]

        if self.kind in ("deepfm", "dcnv2"):
            out["mlp"] = split("mlp")
        if self.kind in ("din", "bst"):
            out["mlp"] = split("mlp", 2 * len(self.seq_targets) * self.dim)
        if self.kind in ("esmm", "escm2"):  # ESCM²'s imputation tower only trains
            out["ctr"], out["cvr"] = split("ctr"), split("cvr")
        if self.kind == "dcnv2" and "cross.layers.0.down.weight" in w:
            out.update(self._compile_low_rank(const, varying))
        elif self.kind == "dcnv2":
            perm = np.concatenate([const, varying])
            cross = []
            i = 0
            while f"cross.layers.{i}.weight" in w:
                cross.append((w[f"cross.layers.{i}.weight"][perm][:, perm], w[f"cross.layers.{i}.bias"][perm]))
                i += 1
            n_c = len(const)
            out["n_const"] = n_c
            out["cross_first"] = (SplitLinear(cross[0][0], cross[0][1], np.arange(n_c),
                                              np.arange(n_c, len(perm))) if len(cross) > 1 else None)
            out["cross_mid"] = [(_f32(cw.T), _f32(cb)) for cw, cb in cross[1:-1]]
            out_w = w["out.weight"][0]
            w_cross = out_w[:len(perm)][perm]
            out["w_cross"] = _f32(w_cross)
            out["w_mlp"] = _f32(out_w[len(perm):])
            if cross:
                last_w, last_b = cross[-1]
                out["last_w_c_t"] = _f32(last_w[:n_c].T)  # W[c rows]^T
                out["last_w_v"] = _f32(last_w[n_c:])  # W[v rows]
                out["last_wb"] = _f32(w_cross * last_b)  # (w * x0) . b = x0 . (w * b)
        return out

    def _compile_low_rank(self, const: np.ndarray, varying: np.ndarray) -> dict:
        """Low-rank cross layers in the permuted coordinates ``[constant, varying]``: ``V`` (down) columns and
        ``U`` (up) rows permuted, the first ``V x0`` split like an MLP's first layer."""
        w, perm, n_c = self.w, np.concatenate([const, varying]), len(const)
        layers, i = [], 0
        while f"cross.layers.{i}.down.weight" in w:
            down, up = w[f"cross.layers.{i}.down.weight"][:, perm], w[f"cross.layers.{i}.up.weight"][perm]
            layers.append((_f32(down.T), _f32(up.T), _f32(w[f"cross.layers.{i}.up.bias"][perm])))
            i += 1
        first = SplitLinear(w["cross.layers.0.down.weight"], None, const, varying)
        out_w = w["out.weight"][0]
        return {"n_const": n_c, "low_rank": (first, layers), "w_cross": _f32(out_w[:len(perm)][perm]),
                "w_mlp": _f32(out_w[len(perm):])}

    # -- forward -------------------------------------------------------------------------------------------
    def logits(self, enc: Encoded, plan: Plan | None = None) -> np.ndarray:
        """Logits ``[n, n_heads]``; inputs not varying under ``plan`` are read from row 0 (``enc.seqs`` may
        then have one row)."""
        plan = plan or self.all_varying()
        ids, seqs, dense, vectors = enc.ids, enc.seqs, enc.dense, enc.vectors
        w = self.w
        if self.kind == "lr":
            return self._first_order(ids, dense) + vectors @ w["vector_weight"] + w["bias"]
        p = self._plan(plan)
        x_c, x_v, c_tok, v_tok = self._parts(plan, ids, seqs, dense, vectors)
        if self.kind == "deepfm":
            linear, rest = p["mlp"]
            deep = run_mlp(rest, _relu(linear(x_c, x_v))) @ w["out.weight"].T + w["out.bias"]
            return self._first_order(ids, dense) + self._fm(x_c[:c_tok], x_v[:, :v_tok]) + deep + w["bias"]
        if self.kind in ("esmm", "escm2"):
            heads = []
            for name in ("ctr", "cvr"):
                linear, rest = p[name]
                hidden = run_mlp(rest, _relu(linear(x_c, x_v)))
                heads.append(hidden @ w[f"{name}_out.weight"].T + w[f"{name}_out.bias"])
            return np.concatenate(heads, axis=1) + w["bias"][:2]
        if self.kind == "dcnv2":
            return (self._dcn_low_rank if "low_rank" in p else self._dcn)(p, x_c, x_v) + w["bias"]
        return self._din(p, plan, ids, seqs, dense, x_c, x_v)

    def _fm(self, tok_c: np.ndarray, tok_v: np.ndarray) -> np.ndarray:
        """Second-order FM term over all tokens, from the constant and the varying token embeddings."""
        total = tok_v @ np.tile(np.eye(self.dim, dtype=np.float32), (tok_v.shape[1] // self.dim, 1))
        total += tok_c.reshape(-1, self.dim).sum(0)
        squares = np.einsum("ij,ij->i", tok_v, tok_v) + float(tok_c @ tok_c)
        return 0.5 * (np.einsum("ij,ij->i", total, total) - squares)[:, None]

    def _dcn(self, p: dict, x_c: np.ndarray, x_v: np.ndarray) -> np.ndarray:
        n_c = p["n_const"]
        x = x0 = _joined(x_c, x_v)
        if p["cross_first"] is not None:
            x = p["cross_first"](x_c, x_v)
            x *= x0
            x += x0
        for weight_t, bias in p["cross_mid"]:
            z = x @ weight_t
            z += bias
            z *= x0
            z += x
            x = z
        w_cross = p["w_cross"]
        if "last_w_v" in p:  # w . x_L folded into the last layer's transposed product
            g = (x_v * w_cross[n_c:]) @ p["last_w_v"]
            g += p["last_w_c_t"] @ (x_c * w_cross[:n_c])
            g += w_cross
            cross = np.einsum("ij,ij->i", x, g)
            cross += x0 @ p["last_wb"]
        else:
            cross = x0 @ w_cross
        linear, rest = p["mlp"]
        cross += run_mlp(rest, _relu(linear(x_c, x_v))) @ p["w_mlp"]
        return cross[:, None] + self.w["out.bias"]

    def _dcn_low_rank(self, p: dict, x_c: np.ndarray, x_v: np.ndarray) -> np.ndarray:
        x = x0 = _joined(x_c, x_v)
        first, layers = p["low_rank"]
        for i, (down_t, up_t, bias) in enumerate(layers):
            z = (first(x_c, x_v) if i == 0 else x @ down_t) @ up_t
            z += bias
            z *= x0
            x = z + x
        linear, rest = p["mlp"]
        deep = run_mlp(rest, _relu(linear(x_c, x_v))) @ p["w_mlp"]
        return (x @ p["w_cross"] + deep)[:, None] + self.w["out.bias"]

    def _din(self, p: dict, plan: Plan, ids: np.ndarray, seqs: np.ndarray, dense: np.ndarray, x_c: np.ndarray,
             x_v: np.ndarray) -> np.ndarray:
        w = self.w
        parts = [x_v]
        if self.seq_targets:
            query = self.table[ids[:, list(self.seq_targets)]].reshape(len(ids), -1)
            keys_ids = seqs.transpose(0, 2, 1)  # [rows, L, S]
            valid = seqs[:, 0] > 0
            if self.kind == "bst":
                items = self.table[keys_ids].reshape(len(seqs), seqs.shape[2], -1)
                attended = self._attend_bst(query, items, valid)
            elif len(seqs) == 1 and len(ids) > 1:
                attended = self._attend_shared(query, self.table[keys_ids[0][valid[0]]].reshape(-1, query.shape[1]))
            else:
                rows = np.nonzero(valid)[0]
                keys = self.table[keys_ids[valid]].reshape(len(rows), -1)
                attended = self._attend_packed(query, keys, rows)
            parts += [attended, query * attended]
        linear, rest = p["mlp"]
        hidden = run_mlp(rest, _relu(linear(x_c, np.concatenate(parts, axis=1))))
        return self._first_order(ids, dense) + hidden @ w["out.weight"].T + w["out.bias"] + w["bias"]

    def _attention_weights(self) -> tuple[np.ndarray, ...]:
        first = self.w["attention.first.weight"]
        w_q, w_k, w_d, w_p = np.split(first, 4, axis=1)
        return w_q + w_d, w_k - w_d, w_p

    def _attend_shared(self, query: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Target attention of ``query [n, dim]`` over one history ``keys [len, dim]`` (valid positions)."""
        n, dim = query.shape
        if len(keys) == 0:
            return np.zeros_like(query)
        w_qd, w_kd, w_p = self._attention_weights()
        hidden_n = w_p.shape[0]
        # R[d, j, h] = k_j[d] W_p[h, d] + (W_q + W_d)[h, d];  R[dim, j, h] = (W_k - W_d) k_j + b
        r = np.empty((dim + 1, len(keys), hidden_n), np.float32)
        np.multiply(keys.T[:, :, None], w_p.T[:, None, :], out=r[:dim])
        r[:dim] += w_qd.T[:, None, :]
        r[dim] = keys @ w_kd.T + self.w["attention.first.bias"]
        q_aug = np.empty((n, dim + 1), np.float32)
        q_aug[:, :dim] = query
        q_aug[:, dim] = 1.0
        hidden = (q_aug @ r.reshape(dim + 1, -1)).reshape(n * len(keys), hidden_n)
        np.maximum(hidden, 0.0, out=hidden)
        hidden = run_mlp(self.attention_rest, hidden)
        scores = (hidden @ self.w["attention.score.weight"][0]).reshape(n, len(keys))
        scores += self.w["attention.score.bias"][0]
        return scores @ keys

    def _attend_packed(self, query: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Target attention with a history per row: ``keys [P, dim]`` valid positions, ``rows [P]`` sorted."""
        out = np.zeros_like(query)
        if len(rows) == 0:
            return out
        w_qd, w_kd, w_p = self._attention_weights()
        q_rows = query[rows]
        pre = keys @ w_kd.T + (q_rows * keys) @ w_p.T + (query @ w_qd.T + self.w["attention.first.bias"])[rows]
        hidden = run_mlp(self.attention_rest, np.maximum(pre, 0.0))
        weighted = (hidden @ self.w["attention.score.weight"].T + self.w["attention.score.bias"]) * keys
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        out[rows[starts]] = np.add.reduceat(weighted, starts, axis=0)
        return out

    def _bst_weights(self) -> dict[str, object]:
        """:class:`~adpilot.rank.layers.HistoryTransformer`'s weights transposed for ``x @ W``, with the
        ``1/sqrt(width)`` of both attentions folded into the query weights."""
        w = self.w
        dim = w["attention.query.weight"].shape[0]
        heads = int(w["attention.heads"])
        scale = np.ones(3 * dim, np.float32)
        scale[:dim] = 1 / np.sqrt(dim // heads)
        return {"heads": heads, "position": w["attention.position.weight"],
                "in": (_f32(w["attention.qkv.weight"].T * scale), _f32(w["attention.qkv.bias"] * scale)),
                "out": (_f32(w["attention.out.weight"].T), w["attention.out.bias"]),
                "ffn_out": (_f32(w["attention.ffn_out.weight"].T), w["attention.ffn_out.bias"]),
                "norm1": (w["attention.norm1.weight"], w["attention.norm1.bias"]),
                "norm2": (w["attention.norm2.weight"], w["attention.norm2.bias"]),
                "query": _f32(w["attention.query.weight"] / np.sqrt(dim))}

    def _attend_bst(self, query: np.ndarray, items: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """:class:`~adpilot.rank.layers.HistoryTransformer`: ``items [r, L, dim]`` with ``valid [r, L]``, one
        history (``r = 1``: encoded once for all ``n`` candidates, then ``q @ K^T`` per candidate) or one per
        row (``r = n``)."""
        if len(items) == 1:  # keep the valid positions only: no padding to mask
            items, valid = items[:, valid[0]], valid[:, valid[0]]
            if not valid.shape[1]:
                return np.zeros_like(query)
        history = self._bst_encode(items, valid)
        keys = history @ self._bst["query"]  # (W_q q) . h / sqrt(dim) = q . (h W_q / sqrt(dim))
        if len(history) == 1:
            return _softmax(query @ keys[0].T) @ history[0]
        scores = np.einsum("nd,nld->nl", query, keys)
        scores[~valid] = -np.inf
        empty = ~valid.any(1)
        scores[empty] = 0.0
        attended = np.einsum("nl,nld->nd", _softmax(scores), history)
        attended[empty] = 0.0
        return attended

    def _bst_encode(self, items: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The transformer block over ``items [r, L, dim]`` (left-aligned, ``valid [r, L]``) -> ``[r, L, dim]``."""
        b = self._bst
        r, length, dim = items.shape
        heads, position = b["heads"], b["position"]
        if valid.all():
            x = items + position[np.minimum(np.arange(length - 1, -1, -1), len(position) - 1)]
            mask = None
        else:
            x = items + position[np.clip(valid.sum(1, keepdims=True) - 1 - np.arange(length), 0, len(position) - 1)]
            mask = np.where(~valid & valid.any(1, keepdims=True), np.float32(-np.inf), np.float32(0))[:, None, None]
        weight_t, bias = b["in"]
        qkv = x @ weight_t
        qkv += bias
        q, k, v = (qkv[..., i * dim:(i + 1) * dim].reshape(r, length, heads, -1).transpose(0, 2, 1, 3)
                   for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2)  # [r, heads, L, L]
        if mask is not None:
            scores += mask
        weight_t, bias = b["out"]
        x += (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(r, length, dim) @ weight_t
        x += bias
        x = _layer_norm(x, *b["norm1"])
        weight_t, bias = b["ffn_out"]
        y = run_mlp(self.attention_ffn, x) @ weight_t
        y += bias
        y += x
        return _layer_norm(y, *b["norm2"])


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in place (``-inf`` = masked; every row must keep one finite score)."""
    scores -= scores.max(-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(-1, keepdims=True)
    return scores


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``torch.nn.LayerNorm`` over the last axis, in place."""
    scale = np.float32(1 / x.shape[-1])
    x -= x.sum(-1, keepdims=True) * scale
    var = np.square(x).sum(-1, keepdims=True)
    var *= scale
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= gain
    x += bias
    return x


def _joined(x_c: np.ndarray, x_v: np.ndarray) -> np.ndarray:
    """[n, c + v]: the request's constant part beside each candidate's varying part."""
    n_c = x_c.shape[-1]
    x0 = np.empty((len(x_v), n_c + x_v.shape[1]), np.float32)
    x0[:, :n_c] = x_c
    x0[:, n_c:] = x_v
    return x0
