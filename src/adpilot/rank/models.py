"""CTR/CVR models as ``nn.Module`` s assembled from :mod:`adpilot.rank.layers`, and their registry.

Every model implements ``logits`` and takes the arrays of :class:`adpilot.rank.features.Encoded` (as tensors) and returns logits
``[batch, n_heads]``: one head (the label) for single-task models, two for ESMM (click, conversion-given-click).
A model is added by writing a class with ``name``, ``heads`` and ``__init__(shape, params)``, and registering it:
the conformance suite in ``tests/rank`` then checks it automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adpilot.errors import UserError, check_scalar
from adpilot.rank.layers import (
    MLP,
    CrossNetV2,
    FactorizationMachine,
    HistoryTransformer,
    Inputs,
    TargetAttention,
)


@dataclass(frozen=True)
class InputShape:
    """Sizes the encoder fixes: embedding rows, categorical fields, which field each sequence targets, the
    language-model vector widths and the number of dense columns."""

    n_rows: int
    n_fields: int
    seq_targets: tuple[int, ...]
    vector_dims: tuple[int, ...]
    n_dense: int

    @property
    def n_tokens(self) -> int:
        """Field embeddings the interaction layers see: categorical + vectors + one per pooled sequence."""
        return self.n_fields + len(self.vector_dims) + len(self.seq_targets)


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters shared by the registry's models (each reads the ones it needs)."""

    embedding_dim: int = 16
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.0
    cross_layers: int = 3
    attention_hidden: tuple[int, ...] = (64,)
    cross_rank: int = 0
    """DCN-v2's cross matrices: 0 = full rank, else ``U V^T`` of this rank (cheaper to serve)."""
    attention_heads: int = 2
    """BST's self-attention heads (they split the history width ``sequences * embedding_dim``)."""
    max_seq_len: int = 50
    """Longest history the encoder keeps: BST's number of recency embeddings."""

    def validate(self) -> ModelParams:
        """Raise :class:`UserError` naming the first bad parameter."""
        try:
            check_scalar(self.embedding_dim, "embedding_dim", ge=1, le=512)
            check_scalar(self.dropout, "dropout", ge=0, lt=1)
            check_scalar(self.cross_layers, "cross_layers", ge=0, le=16)
            check_scalar(self.cross_rank, "cross_rank", ge=0)
            check_scalar(self.attention_heads, "attention_heads", ge=1)
            check_scalar(self.max_seq_len, "max_seq_len", ge=1)
            for name in ("hidden", "attention_hidden"):
                for width in getattr(self, name):
                    check_scalar(width, name, ge=1)
        except ValueError as error:
            raise UserError(str(error)) from None
        if not isinstance(self.embedding_dim, int):
            raise UserError(f"`embedding_dim` must be an integer, got {self.embedding_dim!r}")
        return self


class RankModel(nn.Module):
    """Base of the registry's models: the shared input block and the loss of single-head models."""

    name = ""
    heads: tuple[str, ...] = ("label",)
    extra_outputs = 0
    """Logit columns after the heads that only the training loss reads (never served)."""
    learning_rate = 1e-3
    """Adam's default step for this model (a linear model with zero-initialised weights wants a larger one)."""

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__()
        self.shape = shape
        self.params = params
        self.inputs = Inputs(shape.n_rows, params.embedding_dim, shape.vector_dims, shape.n_dense)
        self.flat_dim = shape.n_tokens * params.embedding_dim + shape.n_dense
        self.bias = nn.Parameter(torch.zeros(len(self.heads) + self.extra_outputs))

    def logits(self, ids: torch.Tensor, seqs: torch.Tensor, dense: torch.Tensor,
               vectors: torch.Tensor) -> torch.Tensor:
        """The model's own logits, before the shared bias (every registered model defines them)."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor, seqs: torch.Tensor, dense: torch.Tensor,
                vectors: torch.Tensor) -> torch.Tensor:
        """Inputs as in :class:`~adpilot.rank.features.Encoded`; logits ``[batch, n_heads + extra_outputs]``."""
        return self.logits(ids, seqs, dense, vectors) + self.bias

    def set_prior(self, rates: list[float]) -> None:
        """Start the output bias at the log-odds of each head's base rate (rare positives train faster); extra
        outputs start at the last head's."""
        with torch.no_grad():
            for h, rate in enumerate(rates + rates[-1:] * self.extra_outputs):
                rate = min(max(rate, 1e-6), 1 - 1e-6)
                self.bias[h] = float(torch.logit(torch.tensor(rate)))

    def tokens(self, ids: torch.Tensor, seqs: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Field embeddings with each sequence mean-pooled into one more field. ``-> [batch, n_tokens, dim]``."""
        return self.inputs.tokens(ids, seqs, vectors)

    def flat(self, ids: torch.Tensor, seqs: torch.Tensor, dense: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Tokens flattened, then the dense columns: the input of the MLP-style models, ``[batch, flat_dim]``."""
        return torch.cat([self.tokens(ids, seqs, vectors).flatten(1), dense], dim=1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 0])

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        """Per-head probabilities ``[batch, n_heads]``; ESMM overrides to return (pCTR, pCTCVR)."""
        return torch.sigmoid(logits)


class LogisticRegression(RankModel):
    """The floor: a weight per hashed id, per dense column and per vector component."""

    name = "lr"
    learning_rate = 0.02

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        self.vector_weight = nn.Parameter(torch.zeros(sum(shape.vector_dims), 1))

    def logits(self, ids, seqs, dense, vectors):  # noqa: ANN001, ANN201 - shapes as in Encoded
        return self.inputs.first_order(ids, dense) + vectors @ self.vector_weight


class DeepFM(RankModel):
    """LR + factorisation machine + MLP over the same field embeddings (Guo et al. 2017)."""

    name = "deepfm"

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        self.fm = FactorizationMachine()
        self.mlp = MLP(self.flat_dim, params.hidden, params.dropout)
        self.out = nn.Linear(self.mlp.out_dim, 1)

    def logits(self, ids, seqs, dense, vectors):  # noqa: ANN001, ANN201
        tokens = self.tokens(ids, seqs, vectors)
        deep = self.out(self.mlp(torch.cat([tokens.flatten(1), dense], dim=1)))
        return self.inputs.first_order(ids, dense) + self.fm(tokens) + deep


class DCNv2(RankModel):
    """Full-rank cross network in parallel with an MLP (Wang et al. 2021)."""

    name = "dcnv2"

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        self.cross = CrossNetV2(self.flat_dim, params.cross_layers, params.cross_rank)
        self.mlp = MLP(self.flat_dim, params.hidden, params.dropout)
        self.out = nn.Linear(self.flat_dim + self.mlp.out_dim, 1)

    def logits(self, ids, seqs, dense, vectors):  # noqa: ANN001, ANN201
        x0 = self.flat(ids, seqs, dense, vectors)
        return self.out(torch.cat([self.cross(x0), self.mlp(x0)], dim=1))


class DIN(RankModel):
    """Target attention from the candidate to the user's recent items (Zhou et al. 2018), plus the LR term.

    The candidate's fields that the sequences point at form the query; the attended history, its mean,
    and the element-wise product of query and attended history join the field embeddings in the MLP.
    Without sequence columns it degrades to an MLP with an LR term. Subclasses change only the attention
    (:meth:`make_attention`).
    """

    name = "din"

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        width = len(shape.seq_targets) * params.embedding_dim
        self.attention = self.make_attention(width, params)
        self.mlp = MLP(self.flat_dim + 2 * width, params.hidden, params.dropout)
        self.out = nn.Linear(self.mlp.out_dim, 1)

    def make_attention(self, width: int, params: ModelParams) -> nn.Module:
        """``(query [batch, width], keys [P, width], rows [P]) -> [batch, width]`` over packed histories."""
        return TargetAttention(width, params.attention_hidden)

    def logits(self, ids, seqs, dense, vectors):  # noqa: ANN001, ANN201
        if not self.shape.seq_targets:
            return self.inputs.first_order(ids, dense) + self.out(self.mlp(self.flat(ids, seqs, dense, vectors)))
        tokens, keys, rows = self.inputs.tokens_and_history(ids, seqs, vectors)
        query = tokens[:, list(self.shape.seq_targets)].flatten(1)
        attended = self.attention(query, keys, rows)
        x = torch.cat([tokens.flatten(1), dense, attended, query * attended], dim=1)
        return self.inputs.first_order(ids, dense) + self.out(self.mlp(x))


class BST(DIN):
    """DIN with a behaviour-sequence transformer (Chen et al. 2019) in place of the activation unit: one
    transformer block with recency embeddings encodes the history, and the candidate attends to it by scaled
    dot product (:class:`~adpilot.rank.layers.HistoryTransformer`). The candidate stays out of the block, so a
    server encodes the history once per request; ``attention_hidden[0]`` is the feed-forward width,
    ``attention_heads`` the self-attention heads. It needs a sequence column."""

    name = "bst"

    def make_attention(self, width: int, params: ModelParams) -> nn.Module:
        if not width:
            raise UserError("model `bst` needs a behaviour sequence column (`hist_<field>` or `recent_items`)")
        if width % params.attention_heads:
            raise UserError(f"`attention_heads` ({params.attention_heads}) must divide the history width {width} "
                            f"({width // params.embedding_dim} sequences x embedding_dim {params.embedding_dim})")
        return HistoryTransformer(width, params.max_seq_len, params.attention_heads, params.attention_hidden[0],
                                  params.dropout)


class ESMM(RankModel):
    """Entire-space multi-task model (Ma et al. 2018): shared embeddings, a CTR tower and a CVR tower, trained on
    impressions with ``pCTCVR = pCTR * pCVR`` so that pCVR is learnt over the whole impression space.

    Calibrated per tower, pCVR is P(conversion | click) for what the features show and pCTR * pCVR is
    P(conversion | impression); see :func:`~adpilot.rank.calibration.fit_tower_calibrators` for why pCVR reads
    above the mean conversion probability of seldom-clicked impressions, and why that is not corrected.

    Labels ``[batch, 2]``: (click, conversion). Logits ``[batch, 2]``: (CTR logit, CVR logit)."""

    name = "esmm"
    heads = ("click", "conversion")
    towers: tuple[str, ...] = ("ctr", "cvr")
    """MLP towers over the shared inputs, one logit column each, in order (``<tower>`` and ``<tower>_out``)."""

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        self.ctr = MLP(self.flat_dim, params.hidden, params.dropout)
        self.cvr = MLP(self.flat_dim, params.hidden, params.dropout)
        self.ctr_out = nn.Linear(self.ctr.out_dim, 1)
        self.cvr_out = nn.Linear(self.cvr.out_dim, 1)

    def logits(self, ids, seqs, dense, vectors):  # noqa: ANN001, ANN201
        x = self.flat(ids, seqs, dense, vectors)
        return torch.cat([getattr(self, f"{t}_out")(getattr(self, t)(x)) for t in self.towers], dim=1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ctr_loss = F.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 0])
        # log pCTCVR = log sigmoid(a) + log sigmoid(b), computed stably.
        log_p = F.logsigmoid(logits[:, 0]) + F.logsigmoid(logits[:, 1])
        log_not_p = torch.log1p(-torch.exp(log_p).clamp(max=1 - 1e-7))
        ctcvr_loss = -(labels[:, 1] * log_p + (1 - labels[:, 1]) * log_not_p).mean()
        return ctr_loss + ctcvr_loss

    @staticmethod
    def probabilities(logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        return torch.stack([p[:, 0], p[:, 0] * p[:, 1]], dim=1)


class ESCM2(ESMM):
    """ESMM plus ESCM²-DR's counterfactual CVR risk (Wang et al., SIGIR 2022): an estimate, over all impressions,
    of the CVR tower's log loss against the conversion each impression would have had if clicked.

    ESMM alone constrains pCVR only through pCTR * pCVR, whose gradient vanishes where clicks are rare, so the
    tower drifts high there. The doubly robust risk (Wang et al., ICML 2019, DR-JL) gives every impression a
    direct term::

        R_DR = mean_i [ e(r~_i, pCVR_i) + o_i / pCTR_i * (e(r_i, pCVR_i) - e(r~_i, pCVR_i)) ]

    with ``e`` the log loss, ``o_i`` the click, ``r_i`` the conversion and ``r~_i`` an imputed conversion
    probability from a third tower. It is unbiased if either the propensity (pCTR, held fixed in this term
    and floored at ``propensity_floor``) or the imputation is right. The imputation tower is fitted by the
    DR-JL imputation loss ``mean_i o_i / pCTR_i * (e(r_i, pCVR_i) - e(r~_i, pCVR_i))^2`` with pCVR held fixed.
    pCTCVR stays pCTR * pCVR; the imputation is the third logit column and is never served.

    Measured (``benchmarks/bench_rank_world.py --parts cvr``, 266 training conversions, seeds 0 and 1): over all
    impressions it lowers ESMM's pCVR a little (mean 4.9x -> 4.3x the truth, ECE 0.031 -> 0.027) but ranks
    conversions per impression worse (pCTCVR expected AUC 0.66 -> 0.54-0.60) and puts more of pCTCVR on bots
    (0.04-0.13 -> 0.18-0.29). The propensity pCTR(x) is the click probability only given the features; the
    world's clicks also follow a hidden interest match that raises conversions, which the DR risk assumes away.
    """

    name = "escm2"
    extra_outputs = 1
    towers = ("ctr", "cvr", "imputation")
    counterfactual_weight = 1.0
    """λ_c of ESCM²: weight of the DR risk next to ESMM's CTR and CTCVR losses."""
    propensity_floor = 0.01

    def __init__(self, shape: InputShape, params: ModelParams) -> None:
        super().__init__(shape, params)
        self.imputation = MLP(self.flat_dim, params.hidden, params.dropout)
        self.imputation_out = nn.Linear(self.imputation.out_dim, 1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        click, conversion = labels[:, 0], labels[:, 1]
        cvr, imputed = logits[:, 1], torch.sigmoid(logits[:, 2])
        weight = click / torch.sigmoid(logits[:, 0].detach()).clamp(min=self.propensity_floor)
        error = F.binary_cross_entropy_with_logits(cvr, conversion, reduction="none")
        imputed_error = F.binary_cross_entropy_with_logits(cvr, imputed.detach(), reduction="none")
        risk = (imputed_error + weight * (error - imputed_error)).mean()
        imputation_fit = F.binary_cross_entropy_with_logits(cvr.detach(), imputed, reduction="none")
        imputation_loss = (weight * (error.detach() - imputation_fit).pow(2)).mean()
        return super().loss(logits, labels) + self.counterfactual_weight * risk + imputation_loss


REGISTRY: dict[str, type[RankModel]] = {m.name: m for m in (LogisticRegression, DeepFM, DCNv2, DIN, BST, ESMM, ESCM2)}


def build_model(name: str, shape: InputShape, params: ModelParams) -> RankModel:
    """Instantiate a registered model by name; an unknown name is a :class:`UserError` listing the choices."""
    if name not in REGISTRY:
        raise UserError(f"`model` must be one of {sorted(REGISTRY)}, got {name!r}")
    return REGISTRY[name](shape, params.validate())
