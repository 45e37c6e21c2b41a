"""Serving-time scoring: a trained model file scored with numpy only (no torch, no training code).

The deliver engine calls ``load_scorer(path)`` once per snapshot and ``Scorer.score(user, ads, context)`` per
request; the feature contract is in :mod:`adpilot.rank.base`. Scoring 200 candidates takes well under a
millisecond on one core (``benchmarks/bench_rank_scorer.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from adpilot.errors import UserError
from adpilot.rank.base import FeatureSpec
from adpilot.rank.calibration import Calibrator
from adpilot.rank.checkpoint import load_arrays
from adpilot.rank.features import FeatureEncoder
from adpilot.rank.npforward import NumpyModel


class Scorer:
    """pCTR (and pCVR for ESMM) of candidate ads for one request; see the module docstring."""

    def __init__(self, header: dict, arrays: dict[str, np.ndarray], cvr_prior: float = 0.0) -> None:
        self.kind: str = header["kind"]
        self.spec = FeatureSpec.from_dict(header["spec"])
        self.encoder = FeatureEncoder(self.spec).load_state({k[4:]: v for k, v in arrays.items()
                                                            if k.startswith("enc/")})
        shape = header["shape"]
        self.model = NumpyModel(self.kind, {k[2:]: v for k, v in arrays.items() if k.startswith("w/")},
                                tuple(shape["seq_targets"]), tuple(shape["vector_dims"]))
        self.calibrator = Calibrator.from_dict(header["calibrators"][0])
        self.two_heads = len(header["heads"]) == 2
        if not 0.0 <= cvr_prior <= 1.0:
            raise UserError(f"`cvr_prior` must be in [0, 1], got {cvr_prior}")
        self.cvr_prior = cvr_prior
        self._sequence_columns = {name for name, _ in self.spec.sequences}

    def score(self, user: Mapping[str, object], ads: Mapping[str, Sequence | np.ndarray],
              context: Mapping[str, object] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pctr, pcvr), float64 arrays with one value per candidate in ``ads`` (a mapping of equal columns)."""
        lengths = {len(v) for v in ads.values()}
        if len(lengths) != 1:
            raise UserError(f"every `ads` column must have one value per candidate, got lengths {sorted(lengths)}")
        n = lengths.pop()
        merged: dict[str, object] = {}
        for part in (context or {}, user):
            for key, value in part.items():
                merged[key] = [value] * n if key in self._sequence_columns else value
        merged.update(ads)
        enc = self.encoder.encode(merged, n=n, strict=False)
        logits = self.model.logits(enc).astype(np.float64)
        p = 1.0 / (1.0 + np.exp(-logits))
        pctr = self.calibrator.apply(p[:, 0])
        pcvr = p[:, 1] if self.two_heads else np.full(n, self.cvr_prior)
        return pctr, pcvr


def load_scorer(path: str | Path, cvr_prior: float = 0.0) -> Scorer:
    """Load a model file written by ``CTRModel.save`` (or ``adpilot train ctr``) for serving."""
    header, arrays = load_arrays(path)
    return Scorer(header, arrays, cvr_prior)
