"""Small PyTorch layers the rank models are assembled from. Each says its shapes; each has a numpy twin in
:mod:`adpilot.rank.npforward` that the serving scorer runs (a test keeps the two equal)."""

from __future__ import annotations

import torch
from torch import nn

SPARSE_FROM = 2**22


class MLP(nn.Module):
    """Linear -> ReLU (-> Dropout) per hidden layer. ``[batch, in_dim] -> [batch, hidden[-1]]``
    (or ``[batch, in_dim]`` unchanged when ``hidden`` is empty)."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FactorizationMachine(nn.Module):
    """Second-order FM term: ``0.5 * sum_d ((sum_f v_fd)^2 - sum_f v_fd^2)``. ``[batch, fields, dim] -> [batch, 1]``."""

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        return 0.5 * (square_of_sum - sum_of_square).sum(dim=1, keepdim=True)


class CrossNetV2(nn.Module):
    """DCN-v2 full-rank cross layers ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``. ``[batch, dim] -> [batch, dim]``."""

    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class MaskedMean(nn.Module):
    """Mean over valid positions. ``[batch, len, dim], mask [batch, len] -> [batch, dim]`` (zeros if none valid)."""

    def forward(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(seq.dtype).unsqueeze(-1)
        return (seq * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class TargetAttention(nn.Module):
    """DIN activation unit: weight each history item by an MLP of ``[q, k, q-k, q*k]`` and sum (no softmax,
    so the pooled norm keeps the strength of interest). ``query [batch, dim], keys [batch, len, dim],
    mask [batch, len] -> [batch, dim]``.

    The first layer is applied by parts, ``(W_q + W_d) q + (W_k - W_d) k + W_p (q*k)``, which is the same
    linear map without building the ``[batch, len, 4*dim]`` concatenation, and the query part once per row.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64,)) -> None:
        super().__init__()
        self.dim = dim
        self.first = nn.Linear(4 * dim, hidden[0])
        self.rest = MLP(hidden[0], hidden[1:])
        self.score = nn.Linear(self.rest.out_dim, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w_q, w_k, w_d, w_p = self.first.weight.split(self.dim, dim=1)
        q_part = query @ (w_q + w_d).T + self.first.bias  # [batch, hidden]
        k_part = keys @ (w_k - w_d).T + (query.unsqueeze(1) * keys) @ w_p.T  # [batch, len, hidden]
        hidden = self.rest(torch.relu(k_part + q_part.unsqueeze(1)))
        weights = self.score(hidden).squeeze(-1) * mask.to(keys.dtype)
        return (weights.unsqueeze(-1) * keys).sum(dim=1)


class Inputs(nn.Module):
    """Embeds every input kind into fields of one width.

    ``ids [batch, F]`` -> field embeddings ``[batch, F, dim]``; ``seqs [batch, S, L]`` -> ``[batch, L, S*dim]``
    (the S parallel sequences side by side per position) with ``mask [batch, L]``; ``vectors [batch, sum(v)]``
    -> ``[batch, n_vectors, dim]`` (one linear projection per language-model vector); ``first_order`` gives the
    per-id scalar weights ``[batch, 1]`` summed over fields (LR / FM's linear term). Large tables (at least
    ``SPARSE_FROM`` numbers) get sparse gradients, so a step touches only the batch's rows; small ones stay
    dense, where a dense Adam step is cheaper than sorting the sparse gradient.
    """

    def __init__(self, n_rows: int, dim: int, vector_dims: tuple[int, ...], n_dense: int) -> None:
        super().__init__()
        sparse = n_rows * dim >= SPARSE_FROM
        self.embedding = nn.Embedding(n_rows, dim, sparse=sparse)
        self.weight = nn.Embedding(n_rows, 1, sparse=sparse)
        self.projections = nn.ModuleList(nn.Linear(v, dim) for v in vector_dims)
        self.dense_weight = nn.Parameter(torch.zeros(n_dense, 1))
        self.vector_dims = vector_dims
        nn.init.normal_(self.embedding.weight, std=0.01)
        nn.init.zeros_(self.weight.weight)

    def fields(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        parts = [self.embedding(ids)]
        for proj, chunk in zip(self.projections, vectors.split(list(self.vector_dims), dim=1), strict=True):
            parts.append(proj(chunk).unsqueeze(1))
        return torch.cat(parts, dim=1)

    def sequence(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embedding(seqs)  # [batch, S, L, dim]
        batch, n_seq, length, dim = emb.shape
        return emb.permute(0, 2, 1, 3).reshape(batch, length, n_seq * dim), seqs[:, 0] > 0

    def first_order(self, ids: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return self.weight(ids).sum(dim=1) + dense @ self.dense_weight
