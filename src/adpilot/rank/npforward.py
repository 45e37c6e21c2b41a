"""Numpy forward passes of the registry's models, for serving without torch.

The forward mirrors :mod:`adpilot.rank.models` and reads the same parameter names as the torch ``state_dict``;
``tests/rank`` checks the two agree to 1e-5 for every registered model. It is organised for the serving shape —
one request, many candidates — where most inputs (the user's fields, history and vector, the context) are the
same for every candidate. A :class:`Plan` says which inputs vary per row; everything that does not is computed
once per request and enters the first layer of each network as a constant vector:

* MLP first layers: ``W x + b = (W_c x_c + b) + W_v x_v``; only the varying columns are multiplied per row.
* DCN-v2 cross network: coordinates are permuted so the constant ones come first, and the last layer is folded
  into the output, ``w . x_L = x_{L-1} . (W^T (w * x0)) + (w * x0) . b + w . x_{L-1}``. Every linear map of
  ``x0`` alone (the first cross layer, ``W^T (w * x0)``, the MLP's first layer, the terms linear in ``x0``) is
  one block of a single split product, so the varying columns are multiplied once (one BLAS call at the
  machine's multiply-add rate instead of four smaller ones).
* DCN-v2 with low-rank cross matrices (``cross_rank > 0``): ``U (V^T x)`` per layer in the same permuted
  coordinates; ``V_0^T x0`` and the folded last layer's ``U^T (w * x0)`` join the fused product.
* DIN attention over one shared history: the bilinear ``W_p (q * k)`` term, the key part and the query part
  become one matrix product ``[q, 1] @ R`` with ``R`` built per request from the history (the history is
  short; the candidates are many), then ReLU and the score layer. That product is the model's floor,
  ``candidates x positions x hidden x (dim + 1)`` multiply-adds (12.7M for 200 x 30 x 64 x 33, ~0.28 ms on one
  core); ``attention_hidden`` scales it.
* ReLU compares against an array of zeros, not the scalar 0 (see :func:`_relu`).
* BST: the transformer block runs over the one history once per request; the candidate's scaled dot product
  uses keys ``H W_q`` prepared with it, so per candidate ``q @ K^T`` ``[n, dim] x [dim, L]``, a softmax and
  ``weights @ H`` remain.

All arrays are float32 and contiguous; the few plans a server sees are cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


_zeros = [np.zeros(0, np.float32)]
"""A read-only float32 zero buffer, grown on demand, that :func:`_relu` compares against."""


def _relu(x: np.ndarray) -> np.ndarray:
    """ReLU in place (the argument is a fresh product nobody else holds, or a block of one). The zero is an
    array: numpy 1.26's ``maximum`` against a scalar runs a loop ~4x slower than against a same-shape array
    (0.15 vs 0.04 ms on DIN's ``[200, 1920]`` attention block). The shared buffer is only read; growing it
    swaps in a larger one, which is safe for concurrent callers."""
    if _zeros[0].size < x.size:
        zeros = np.zeros(x.size, np.float32)
        zeros.flags.writeable = False
        _zeros[0] = zeros
    return np.maximum(x, _zeros[0][:x.size].reshape(x.shape), out=x)


def run_mlp(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Linear + ReLU per layer (dropout is the identity at inference), in place after the first product."""
    for weight_t, bias in layers:
        x = x @ weight_t
        x += bias
        _relu(x)
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
        self._attention = self._attention_weights() if "attention.first.weight" in self.w else {}
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
        """Mean embedding over valid positions: ``[rows, S, L] -> [rows, S*dim]``, float32 (a float64 count
        would turn every later product float64)."""
        valid = seqs[:, 0] > 0
        emb = self.table[seqs] * valid[:, None, :, None]
        count = np.maximum(valid.sum(1), 1).astype(np.float32)
        return (emb.sum(2) / count[:, None, None]).reshape(len(seqs), -1)

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

        if self.kind == "deepfm":
            out["mlp"] = split("mlp")
        if self.kind in ("din", "bst"):
            out["mlp"] = split("mlp", 2 * len(self.seq_targets) * self.dim)
        if self.kind in ("esmm", "escm2"):  # ESCM²'s imputation tower only trains
            out["ctr"], out["cvr"] = split("ctr"), split("cvr")
        if self.kind == "dcnv2":
            out.update(self._compile_dcn(const, varying))
        return out

    def _compile_dcn(self, const: np.ndarray, varying: np.ndarray) -> dict:
        """DCN-v2 in the permuted coordinates ``[constant, varying]`` (see the module docstring). Every linear
        map of ``x0`` alone is a block of one :class:`SplitLinear`, so the varying columns go through a single
        product: the first cross layer (its down-projection ``V_0^T x0`` when low rank), the last layer folded
        into the output (``g = W^T (w * x0) + w``, or ``U^T (w * x0)`` when low rank), the MLP's first layer,
        and one column for the output's terms linear in ``x0`` (``x0 . (w * b_L)``, and ``w . x0`` where it
        applies)."""
        w, perm, n_c = self.w, np.concatenate([const, varying]), len(const)
        d = len(perm)
        low_rank = "cross.layers.0.down.weight" in w
        layers: list[tuple[np.ndarray, ...]] = []  # (W, b) or (V^T, U, b), permuted
        while f"cross.layers.{len(layers)}.{'up.' if low_rank else ''}bias" in w:
            name = f"cross.layers.{len(layers)}"
            layers.append((w[f"{name}.down.weight"][:, perm], w[f"{name}.up.weight"][perm], w[f"{name}.up.bias"][perm])
                          if low_rank else (w[f"{name}.weight"][perm][:, perm], w[f"{name}.bias"][perm]))
        out_w = w["out.weight"][0]
        w_cross, w_mlp = out_w[:d][perm], out_w[d:]
        linear_row = w_cross * layers[-1][-1] if layers else w_cross.copy()
        blocks: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, rows of a linear map of x0, its bias)
        if low_rank and layers:
            rank = layers[0][0].shape[0]
            blocks += [("first", layers[0][0], np.zeros(rank)), ("last", layers[-1][1].T * w_cross, np.zeros(rank))]
            if len(layers) == 1:  # w . x_{L-1} with x_{L-1} = x0
                linear_row = linear_row + w_cross
        elif layers:
            if len(layers) > 1:
                blocks.append(("first", layers[0][0], layers[0][1]))
            blocks.append(("last", layers[-1][0].T * w_cross, w_cross))
        rest: list = []
        if "mlp.net.0.weight" in w:
            blocks.append(("mlp", w["mlp.net.0.weight"][:, perm], w["mlp.net.0.bias"]))
            rest = mlp_layers(w, "mlp")[1:]
        else:  # no hidden layers: the MLP passes x0 through
            linear_row = linear_row + w_mlp[perm]
        blocks.append(("linear", linear_row[None], np.zeros(1)))
        stops = np.cumsum([len(rows) for _, rows, _ in blocks])
        out: dict = {"fused": SplitLinear(np.concatenate([rows for _, rows, _ in blocks]),
                                          np.concatenate([bias for _, _, bias in blocks]), np.arange(n_c),
                                          np.arange(n_c, d)),
                     "cols": {name: slice(stop - len(rows), stop) for (name, rows, _), stop in zip(blocks, stops,
                                                                                                 strict=True)},
                     "mlp_rest": rest, "w_mlp": _f32(w_mlp), "w_cross": _f32(w_cross), "low_rank": low_rank,
                     "n_layers": len(layers)}
        if low_rank:  # first layer's up-projection, middle layers, last layer's down-projection
            out["first_up"] = (_f32(layers[0][1].T), _f32(layers[0][2])) if len(layers) > 1 else None
            out["mid"] = [(_f32(v_t.T), _f32(u.T), _f32(b)) for v_t, u, b in layers[1:-1]]
            out["last_down_t"] = _f32(layers[-1][0].T) if len(layers) > 1 else None
        else:
            out["mid"] = [(_f32(cw.T), _f32(cb)) for cw, cb in layers[1:-1]]
        return out

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
            return self._dcn(p, x_c, x_v) + w["bias"]
        return self._din(p, plan, ids, seqs, dense, x_c, x_v)

    def _fm(self, tok_c: np.ndarray, tok_v: np.ndarray) -> np.ndarray:
        """Second-order FM term over all tokens, from the constant and the varying token embeddings."""
        total = tok_v @ np.tile(np.eye(self.dim, dtype=np.float32), (tok_v.shape[1] // self.dim, 1))
        total += tok_c.reshape(-1, self.dim).sum(0)
        squares = np.einsum("ij,ij->i", tok_v, tok_v) + float(tok_c @ tok_c)
        return 0.5 * (np.einsum("ij,ij->i", total, total) - squares)[:, None]

    def _dcn(self, p: dict, x_c: np.ndarray, x_v: np.ndarray) -> np.ndarray:
        """DCN-v2 logit from the fused products of :meth:`_compile_dcn`."""
        f = p["fused"](x_c, x_v)
        cols = p["cols"]
        x = x0 = _joined(x_c, x_v)
        if p["n_layers"] > 1:  # the first layer, from its fused product
            z = f[:, cols["first"]]
            if p["low_rank"]:
                up_t, bias = p["first_up"]
                z = z @ up_t
                z += bias
            x = z * x0
            x += x0
        for layer in p["mid"]:
            z = (x @ layer[0] @ layer[1] if p["low_rank"] else x @ layer[0]) + layer[-1]
            z *= x0
            z += x
            x = z
        cross = f[:, cols["linear"].start].copy()
        if p["n_layers"] and not p["low_rank"]:  # w . x_L = x_{L-1} . g + x0 . (w * b_L)
            cross += np.einsum("ij,ij->i", x, f[:, cols["last"]])
        elif p["n_layers"]:  # w . x_L = (V^T x_{L-1}) . (U^T (w * x0)) + x0 . (w * b_L) + w . x_{L-1}
            y = f[:, cols["first"]] if p["n_layers"] == 1 else x @ p["last_down_t"]
            cross += np.einsum("ij,ij->i", y, f[:, cols["last"]])
            if p["n_layers"] > 1:
                cross += x @ p["w_cross"]
        if "mlp" in cols:
            cross += run_mlp(p["mlp_rest"], _relu(f[:, cols["mlp"]])) @ p["w_mlp"]
        return cross[:, None] + self.w["out.bias"]

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

    def _attention_weights(self) -> dict[str, np.ndarray]:
        """:class:`~adpilot.rank.layers.TargetAttention`'s first layer by parts, transposed for ``x @ W``:
        ``(W_q + W_d)`` (query), ``(W_k - W_d)`` (key), ``W_p`` (product), and the score layer."""
        w_q, w_k, w_d, w_p = np.split(self.w["attention.first.weight"], 4, axis=1)
        return {"qd": _f32((w_q + w_d).T), "kd": _f32((w_k - w_d).T), "p": _f32(w_p.T),
                "p_qd": _f32(np.stack([w_p.T, (w_q + w_d).T], axis=1)),  # [dim, 2, hidden]
                "bias": self.w["attention.first.bias"], "score": _f32(self.w["attention.score.weight"][0]),
                "score_bias": self.w["attention.score.bias"]}

    def _attend_shared(self, query: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Target attention of ``query [n, dim]`` over one history ``keys [len, dim]`` (valid positions).

        Everything but the query is known once per request, so the first layer of every (candidate, position)
        pair is one product ``[q, 1] @ R``, ``R [dim + 1, len * hidden]`` built from the history (it is at the
        floor of this model's multiply-adds, ``n * len * hidden * (dim + 1)``)."""
        n, dim = query.shape
        if len(keys) == 0:
            return np.zeros_like(query)
        a = self._attention
        hidden_n = a["p"].shape[1]
        # R[d, j, h] = k_j[d] W_p[h, d] + (W_q + W_d)[h, d] = [k_j[d], 1] @ [W_p[h, d], (W_q + W_d)[h, d]]
        # (a batched product: ~4x faster than the broadcast multiply and add); R[dim, j, h] = (W_k - W_d) k_j + b
        r = np.empty((dim + 1, len(keys), hidden_n), np.float32)
        k_one = np.empty((dim, len(keys), 2), np.float32)
        k_one[:, :, 0] = keys.T
        k_one[:, :, 1] = 1.0
        np.matmul(k_one, a["p_qd"], out=r[:dim])
        np.matmul(keys, a["kd"], out=r[dim])
        r[dim] += a["bias"]
        q_aug = np.empty((n, dim + 1), np.float32)
        q_aug[:, :dim] = query
        q_aug[:, dim] = 1.0
        hidden = _relu(q_aug @ r.reshape(dim + 1, -1)).reshape(n * len(keys), hidden_n)
        scores = (run_mlp(self.attention_rest, hidden) @ a["score"]).reshape(n, len(keys))
        scores += a["score_bias"]
        return scores @ keys

    def _attend_packed(self, query: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Target attention with a history per row: ``keys [P, dim]`` valid positions, ``rows [P]`` sorted."""
        out = np.zeros_like(query)
        if len(rows) == 0:
            return out
        a = self._attention
        pre = keys @ a["kd"] + (query[rows] * keys) @ a["p"] + (query @ a["qd"] + a["bias"])[rows]
        hidden = run_mlp(self.attention_rest, _relu(pre))
        weighted = (hidden @ a["score"] + a["score_bias"])[:, None] * keys
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        out[rows[starts]] = np.add.reduceat(weighted, starts, axis=0)
        return out

    def _bst_weights(self) -> dict[str, Any]:
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
