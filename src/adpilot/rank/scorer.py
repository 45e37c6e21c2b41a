"""Serving-time scoring: a trained model file scored with numpy only (no torch, no training code).

The deliver engine calls ``load_scorer(path)`` once per snapshot and ``Scorer.score(user, ads, context)`` per
request; the feature contract is in :mod:`adpilot.rank.base`. The request's own inputs are hashed and embedded
once, candidates' values are hashed through a memo (the same ads come back request after request), and the
forward pass computes the user-side parts once (:mod:`adpilot.rank.npforward`); latency against torch is
measured by ``benchmarks/bench_rank_scorer.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from adpilot.errors import UserError
from adpilot.rank.base import FeatureSpec
from adpilot.rank.calibration import Calibrator
from adpilot.rank.checkpoint import load_arrays
from adpilot.rank.features import Encoded, FeatureEncoder
from adpilot.rank.npforward import NumpyModel, Plan


class Scorer:
    """pCTR (and pCVR for ESMM) of candidate ads for one request; see the module docstring."""

    def __init__(self, header: dict, arrays: dict[str, np.ndarray], cvr_prior: float = 0.0) -> None:
        self.kind: str = header["kind"]
        self.spec = FeatureSpec.from_dict(header["spec"])
        self.encoder = FeatureEncoder(self.spec, memoize=True).load_state({k[4:]: v for k, v in arrays.items()
                                                                           if k.startswith("enc/")})
        shape = header["shape"]
        self.model = NumpyModel(self.kind, {k[2:]: v for k, v in arrays.items() if k.startswith("w/")},
                                tuple(shape["seq_targets"]), tuple(shape["vector_dims"]), shape["n_fields"],
                                shape["n_dense"])
        self.calibrators = [Calibrator.from_dict(c) for c in header["calibrators"]]
        self.two_heads = len(header["heads"]) == 2
        if not 0.0 <= cvr_prior <= 1.0:
            raise UserError(f"`cvr_prior` must be in [0, 1], got {cvr_prior}")
        self.cvr_prior = cvr_prior
        self._sequence_columns = {name for name, _ in self.spec.sequences}
        self._columns = set(self.spec.columns())
        self._layouts: dict[frozenset, tuple] = {}

    def _layout(self, per_row: frozenset) -> tuple:
        """For the set of columns given per candidate: the model's :class:`Plan` and boolean masks that pick
        each input from the per-candidate or the per-request encoding."""
        if per_row not in self._layouts:
            spec = self.spec
            fields = np.array([c in per_row for c in spec.categorical], bool)
            vectors = np.array([v in per_row for v, _ in spec.vectors], bool)
            dense = np.array([c in per_row for c in spec.dense], bool)
            seqs = np.array([s in per_row for s, _ in spec.sequences], bool)
            plan = Plan(tuple(np.flatnonzero(fields).tolist()), tuple(np.flatnonzero(vectors).tolist()),
                        tuple(np.flatnonzero(dense).tolist()), bool(seqs.any()))
            starts = np.cumsum([0] + [d for _, d in spec.vectors])
            request_vectors = [slice(starts[v], starts[v + 1]) for v in np.flatnonzero(~vectors)]
            self._layouts[per_row] = (plan, fields, dense, request_vectors, seqs[None, :, None])
        return self._layouts[per_row]

    def score(self, user: Mapping[str, object], ads: Mapping[str, Sequence | np.ndarray],
              context: Mapping[str, object] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pctr, pcvr), float64 arrays with one value per candidate in ``ads`` (a mapping of equal columns).

        The request's own inputs (user, context) are encoded once, the candidates' columns per row, and the
        model computes everything that does not depend on the candidate once (see :mod:`npforward`)."""
        lengths = {len(v) for v in ads.values()}
        if len(lengths) != 1:
            raise UserError(f"every `ads` column must have one value per candidate, got lengths {sorted(lengths)}")
        n = lengths.pop()
        if n == 0:
            return np.zeros(0), np.zeros(0)
        request = {k: ([v] if k in self._sequence_columns else v)
                   for part in (context or {}, user) for k, v in part.items()
                   if k in self._columns and k not in ads}
        per_row = {k: v for k, v in ads.items() if k in self._columns}
        plan, fields, dense, request_vectors, seqs = self._layout(frozenset(per_row))
        once = self.encoder.encode(request, n=1, strict=False)
        rows = self.encoder.encode(per_row, n=n, strict=False)
        # the request's vectors go into the candidates' array (fresh from this call's encoding: no copy needed),
        # block by block (~3x cheaper than a np.where over every column)
        vectors = rows.vectors if rows.vectors.flags.owndata and rows.vectors.flags.writeable else rows.vectors.copy()
        for columns in request_vectors:
            vectors[:, columns] = once.vectors[0, columns]
        enc = Encoded(np.where(fields, rows.ids, once.ids), np.where(seqs, rows.seqs, once.seqs) if plan.sequences
                      else once.seqs, np.where(dense, rows.dense, once.dense), vectors)
        logits = self.model.logits(enc, plan).astype(np.float64)
        pctr = self.calibrators[0].apply_logit(logits[:, 0])
        pcvr = self.calibrators[1].apply_logit(logits[:, 1]) if self.two_heads else np.full(n, self.cvr_prior)
        return pctr, pcvr


def load_scorer(path: str | Path, cvr_prior: float = 0.0) -> Scorer:
    """Load a model file written by ``CTRModel.save`` (or ``adpilot train ctr``) for serving."""
    header, arrays = load_arrays(path)
    return Scorer(header, arrays, cvr_prior)
