"""Small PyTorch layers the rank models are assembled from. Each says its shapes; each has a numpy twin in
:mod:`adpilot.rank.npforward` that the serving scorer runs (a test keeps the two equal)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class LowRank(nn.Module):
    """``W x + b`` with ``W = U V^T`` of rank ``rank`` (DCN-v2's low-rank cross, Wang et al. 2021 §3.3):
    ``2 * dim * rank`` multiplications per row instead of ``dim^2``."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


class CrossNetV2(nn.Module):
    """DCN-v2 cross layers ``x_{l+1} = x_0 * (W_l x_l + b_l) + x_l``, ``W_l`` full rank or, with ``rank > 0``,
    ``U_l V_l^T`` (:class:`LowRank`). ``[batch, dim] -> [batch, dim]``."""

    def __init__(self, dim: int, n_layers: int, rank: int = 0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(LowRank(dim, rank) if rank else nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class TargetAttention(nn.Module):
    """DIN activation unit: weight each history item by an MLP of ``[q, k, q-k, q*k]`` and sum (no softmax,
    so the pooled norm keeps the strength of interest). ``query [batch, dim]``, ``keys [P, dim]`` (the valid
    history positions of every row, packed), ``rows [P]`` (the row of each position) ``-> [batch, dim]``.

    Packed positions because histories are short on average and padded to the longest: attending to padding
    is most of the work otherwise. The first layer is applied by parts, ``(W_q + W_d) q + (W_k - W_d) k +
    W_p (q*k)``, which is the same linear map without building the ``4*dim`` concatenation, and the query
    part once per row.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64,)) -> None:
        super().__init__()
        self.dim = dim
        self.first = nn.Linear(4 * dim, hidden[0])
        self.rest = MLP(hidden[0], hidden[1:])
        self.score = nn.Linear(self.rest.out_dim, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        w_q, w_k, w_d, w_p = self.first.weight.split(self.dim, dim=1)
        q_part = query @ (w_q + w_d).T + self.first.bias  # [batch, hidden]
        q_rows = query.index_select(0, rows)  # [P, dim]
        k_part = keys @ (w_k - w_d).T + (q_rows * keys) @ w_p.T + q_part.index_select(0, rows)  # [P, hidden]
        weights = self.score(self.rest(torch.relu(k_part)))  # [P, 1]
        return query.new_zeros(query.shape).index_add_(0, rows, weights * keys)


class _BagMean(torch.autograd.Function):
    """Mean of each bag of rows of a dense table, as ``F.embedding_bag(mode="mean")``, with a cheaper backward:
    one accumulating ``index_put_`` of the per-position gradients (no sort). On CPU, ``embedding_bag``'s dense
    backward sorts the indices; this one is ~5x faster, and a DCN-v2 training step on Beauty-8k ~13% faster
    on one thread (~7% on two).

    ``index [N]`` table rows, ``offsets [B]`` bag starts, ``bag [N]`` each position's bag, ``scale [N]`` one over
    its bag's size -> ``[B, dim]`` (an empty bag gives zeros)."""

    @staticmethod
    def forward(ctx, weight, index, offsets, bag, scale):  # noqa: ANN001, ANN205 - autograd.Function protocol
        ctx.save_for_backward(index, bag, scale)
        ctx.n_rows = weight.shape[0]
        return F.embedding_bag(index, weight, offsets, mode="mean")

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        index, bag, scale = ctx.saved_tensors
        rows = grad.index_select(0, bag) * scale.unsqueeze(1)
        table = grad.new_zeros((ctx.n_rows, grad.shape[1])).index_put_((index,), rows, accumulate=True)
        return table, None, None, None, None


class Inputs(nn.Module):
    """Embeds every input kind into fields of one width.

    ``ids [batch, F]``, ``seqs [batch, S, L]``, ``vectors [batch, sum(v)]`` -> tokens ``[batch, F + V + S, dim]``
    (field embeddings, one linear projection per language-model vector, mean-pooled sequences);
    :meth:`tokens_and_history` adds the valid history positions for attention; ``first_order`` gives the per-id scalar weights
    ``[batch, 1]`` summed over fields (LR / FM's linear term). Large tables (at least
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

    def tokens(self, ids: torch.Tensor, seqs: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Field embeddings, projected vectors, and each sequence mean-pooled over the valid positions (those of
        the first sequence): ``[batch, F + V + S, dim]``. The ids and the packed valid sequence ids go through
        one bag-mean (an id is a bag of one), so the backward pass scatters into the table once and never
        touches padding."""
        batch, n_fields = ids.shape
        n_seq = seqs.shape[1]
        index, sizes = ids.flatten(), torch.ones(batch * n_fields, dtype=torch.long)
        if n_seq:
            valid = seqs[:, 0] > 0  # [batch, L], histories are left-aligned
            flat = torch.masked_select(seqs, valid.unsqueeze(1))  # bag (row, sequence) after bag
            sizes = torch.cat([sizes, valid.sum(dim=1).repeat_interleave(n_seq)])
            index = torch.cat([index, flat])
        offsets = torch.cumsum(sizes, 0) - sizes
        emb = self._bag_mean(index, offsets, sizes)
        return self._join(emb[:batch * n_fields], vectors, emb[batch * n_fields:])

    def tokens_and_history(self, ids: torch.Tensor, seqs: torch.Tensor,
                           vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`tokens`, and the valid history positions of every row with the S parallel sequences side by
        side: ``keys [P, S*dim]``, ``rows [P]`` (positions of row 0 first, in order). One lookup serves both:
        each history position is embedded once and the pooled sequences are the row means of ``keys``, so the
        backward pass scatters into the table once (attention models need both)."""
        batch, n_fields = ids.shape
        n_seq, dim = seqs.shape[1], self.embedding.embedding_dim
        valid = seqs[:, 0] > 0
        rows = valid.nonzero()[:, 0]
        index = torch.cat([ids.flatten(), seqs.transpose(1, 2)[valid].flatten()])
        emb = self._bag_mean(index, torch.arange(len(index)), torch.ones_like(index))
        keys = emb[batch * n_fields:].view(len(rows), n_seq * dim)
        pooled = keys.new_zeros((batch, n_seq * dim)).index_add_(0, rows, keys)
        pooled = pooled / valid.sum(1, keepdim=True).clamp(min=1)
        return self._join(emb[:batch * n_fields], vectors, pooled.view(batch * n_seq, dim)), keys, rows

    def _join(self, fields: torch.Tensor, vectors: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Field embeddings ``[batch * F, dim]``, the projected vectors and the pooled sequences
        ``[batch * S, dim]`` as tokens ``[batch, F + V + S, dim]``."""
        batch = len(vectors)
        parts = [fields.view(batch, -1, fields.shape[1])]
        for proj, chunk in zip(self.projections, vectors.split(list(self.vector_dims), dim=1), strict=True):
            parts.append(proj(chunk).unsqueeze(1))
        parts.append(pooled.view(batch, -1, fields.shape[1]))
        return torch.cat(parts, dim=1)

    def _bag_mean(self, index: torch.Tensor, offsets: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        """Mean embedding per bag; dense tables under autograd take :class:`_BagMean`'s cheaper backward."""
        table = self.embedding.weight
        if self.embedding.sparse or not (torch.is_grad_enabled() and table.requires_grad):
            return F.embedding_bag(index, table, offsets, mode="mean", sparse=self.embedding.sparse)
        bag = torch.repeat_interleave(torch.arange(len(sizes)), sizes, output_size=len(index))
        scale = (1.0 / sizes.clamp(min=1).to(table.dtype)).index_select(0, bag)
        return _BagMean.apply(table, index, offsets, bag, scale)

    def first_order(self, ids: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        return self.weight(ids).sum(dim=1) + dense @ self.dense_weight


class HistoryTransformer(nn.Module):
    """BST-style target attention (Chen et al. 2019), split so that serving encodes the history once per request:
    one post-norm transformer block (multi-head self-attention, feed-forward, residuals, LayerNorm) over the
    user's recent items plus a learnt embedding of each item's recency (0 = newest), then the candidate attends
    to the encoded history by scaled dot product, ``softmax(W q . h_j / sqrt(dim))``, padding masked. The
    candidate never enters the block (unlike the paper), so per candidate only a ``[dim] x [dim, L]`` and an
    ``[L] x [L, dim]`` product remain.

    Same signature as :class:`TargetAttention`: ``query [batch, dim]``, ``keys [P, dim]`` (valid history
    positions, packed, rows in order), ``rows [P]`` ``-> [batch, dim]`` (zeros for an empty history). Every
    position-wise step (projections, feed-forward, LayerNorm, target scores) runs on the packed positions; only
    the ``L x L`` self-attention is padded, per bucket of rows of similar history length (:attr:`LENGTH_BUCKETS`),
    by ``scaled_dot_product_attention`` (fused softmax and mask, forward and backward).
    """

    LENGTH_BUCKETS = (4, 8, 16, 32, 64)
    """Upper history lengths of the self-attention buckets (longer ones form the last). Histories are short on
    average but were padded to the batch's longest: on Beauty (median 5 items, 10% at the cap of 30) one padded
    block does ~4x the ``L x L`` work of these buckets, and was ~60% of a training step; with the buckets a
    Beauty-8k step (batch 1,024, one thread) runs ~21k rows per CPU second instead of ~12k."""

    heads: torch.Tensor

    def __init__(self, dim: int, max_len: int, heads: int, ffn_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.position = nn.Embedding(max_len, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = MLP(dim, (ffn_hidden,), dropout)
        self.ffn_out = nn.Linear(ffn_hidden, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim, bias=False)
        self.dropout = dropout
        self.register_buffer("heads", torch.tensor(heads))  # in the saved weights, for the numpy forward
        nn.init.normal_(self.position.weight, std=0.01)
        nn.init.xavier_uniform_(self.qkv.weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out.bias)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        batch, dim = query.shape
        if not len(rows):
            return torch.zeros_like(query)
        counts = torch.bincount(rows, minlength=batch)
        slot = torch.arange(len(rows)) - (torch.cumsum(counts, 0) - counts).index_select(0, rows)
        # Every step but the self-attention is per position or a sum over a row's positions, so the positions
        # are put bucket by bucket once, here, and never put back.
        bucket = torch.bucketize(counts, torch.tensor(self.LENGTH_BUCKETS)).index_select(0, rows)
        order = torch.argsort(bucket, stable=True)  # rows stay in order within a bucket
        keys, rows, slot = keys.index_select(0, order), rows.index_select(0, order), slot.index_select(0, order)
        sizes = torch.bincount(bucket, minlength=len(self.LENGTH_BUCKETS) + 1).tolist()
        history = self.encode(keys, rows, slot, counts, sizes)
        scores = (self.query(query).index_select(0, rows) * history).sum(1) / dim**0.5  # [P]
        padded = scores.new_full((batch, int(counts.max())), float("-inf")).index_put_((rows, slot), scores)
        weights = torch.softmax(padded.masked_fill(counts.unsqueeze(1) == 0, 0.0), 1)[rows, slot]
        return query.new_zeros(query.shape).index_add_(0, rows, weights.unsqueeze(1) * history)

    def encode(self, keys: torch.Tensor, rows: torch.Tensor, slot: torch.Tensor, counts: torch.Tensor,
               sizes: list[int]) -> torch.Tensor:
        """The transformer block over packed history positions ``keys [P, dim]`` (row ``rows``, position
        ``slot`` in it; ``counts [batch]`` positions per row) -> ``[P, dim]``. The positions come in runs of
        ``sizes`` (whole rows, in order within a run) that the self-attention pads separately."""
        recency = (counts.index_select(0, rows) - 1 - slot).clamp(max=self.position.num_embeddings - 1)
        x = keys + self.position(recency)
        parts = zip(self.qkv(x).split(sizes), rows.split(sizes), slot.split(sizes), strict=True)
        attended = torch.cat([self._self_attention(qkv, r, s, counts) for qkv, r, s in parts if len(r)])
        x = self.norm1(x + self.out(attended))
        return self.norm2(x + self.ffn_out(self.ffn(x)))

    def _self_attention(self, qkv: torch.Tensor, rows: torch.Tensor, slot: torch.Tensor,
                        counts: torch.Tensor) -> torch.Tensor:
        """Multi-head attention among the positions of each row, ``qkv [p, 3 * dim]`` (rows in order) ->
        ``[p, dim]``, padded to the longest of these rows only."""
        heads, dim = int(self.heads), qkv.shape[1] // 3
        unique, local = torch.unique_consecutive(rows, return_inverse=True)
        lengths = counts.index_select(0, unique)
        length = int(lengths.max())
        flat = local * length + slot  # index_copy / index_select: their backward passes are gathers and sums
        padded = qkv.new_zeros((len(unique) * length, 3 * dim)).index_copy(0, flat, qkv)
        q, k, v = padded.view(len(unique), length, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        keep = (torch.arange(length) < lengths.unsqueeze(1))[:, None, None, :]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=keep,
                                                  dropout_p=self.dropout if self.training else 0.0)
        return attended.transpose(1, 2).reshape(len(unique) * length, dim).index_select(0, flat)
