"""A small, real scorer for the deliver room's own tests and for running before the rank room's models exist.

Two logistic models: P(click) and P(conversion | click) from the cosine of the user's interest vector and of the
page/query vector with the ad, plus the ad's smoothed historical rate (logit, centred; 0 when unknown). Fitted by
maximum likelihood on logged impressions, so its outputs are probabilities. The production scorer is the rank
room's ``load_scorer(path)``; any object with ``score(CandidateBatch)`` plugs in the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from adpilot.deliver.base import CandidateBatch, Scorer, clip


def _logit(p: np.ndarray) -> np.ndarray:
    p = clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def similarity_features(user_sim: np.ndarray, context_sim: np.ndarray, prior: np.ndarray,
                        prior_centre: float) -> np.ndarray:
    """Design matrix (n, 3): user cosine, context cosine, centred logit prior (0 where the prior is unknown).
    Filled column by column (``np.column_stack`` costs more than the arithmetic for one request's candidates)."""
    x = np.empty((len(prior), 3))
    x[:, 0], x[:, 1], x[:, 2] = user_sim, context_sim, 0.0
    known = np.isfinite(prior)
    if known.any():
        x[known, 2] = _logit(prior[known]) - prior_centre
    return x


class SimilarityScorer:
    """Calibrated logistic pCTR / pCVR on vector similarity and ad history (see module docstring).

    >>> rng = np.random.default_rng(0)
    >>> sim = rng.uniform(0, 1, 20000)
    >>> clicks = rng.random(20000) < 1 / (1 + np.exp(-(-4 + 3 * sim)))
    >>> s = SimilarityScorer().fit(sim, np.zeros(20000), np.full(20000, np.nan), clicks)
    >>> abs(float(s.ctr_coef_[0]) - 3.0) < 0.3  # recovers the true weight
    True
    """

    def __init__(self, l2: float = 1e-3) -> None:
        self.l2 = l2

    def fit(self, user_sim: np.ndarray, context_sim: np.ndarray, prior_ctr: np.ndarray, clicked: np.ndarray,
            prior_cvr: np.ndarray | None = None, converted: np.ndarray | None = None) -> SimilarityScorer:
        """Fit P(click) on all impressions, and P(conversion | click) on the clicked ones when labels are given."""
        from sklearn.linear_model import LogisticRegression

        clicked = np.asarray(clicked, dtype=bool)
        if clicked.all() or not clicked.any():
            raise ValueError("`clicked` must contain both clicks and non-clicks to fit a click model")
        finite = np.isfinite(prior_ctr)
        self.ctr_centre_ = float(_logit(prior_ctr[finite]).mean()) if finite.any() else 0.0
        model = LogisticRegression(C=1 / self.l2, max_iter=1000)
        model.fit(similarity_features(user_sim, context_sim, prior_ctr, self.ctr_centre_), clicked)
        self.ctr_coef_, self.ctr_intercept_ = model.coef_[0].copy(), float(model.intercept_[0])
        self.cvr_centre_, self.cvr_coef_, self.cvr_intercept_ = 0.0, np.zeros(3), _logit(np.array(0.0)).item()
        if converted is not None:
            converted = np.asarray(converted, dtype=bool)[clicked]
            cvr_prior = (np.full(clicked.sum(), np.nan) if prior_cvr is None
                         else np.asarray(prior_cvr, dtype=np.float64)[clicked])
            finite = np.isfinite(cvr_prior)
            self.cvr_centre_ = float(_logit(cvr_prior[finite]).mean()) if finite.any() else 0.0
            if converted.any() and not converted.all():
                cvr_model = LogisticRegression(C=1 / self.l2, max_iter=1000)
                x = similarity_features(user_sim[clicked], context_sim[clicked], cvr_prior, self.cvr_centre_)
                cvr_model.fit(x, converted)
                self.cvr_coef_, self.cvr_intercept_ = cvr_model.coef_[0].copy(), float(cvr_model.intercept_[0])
            else:
                self.cvr_intercept_ = float(_logit(np.array(converted.mean() if len(converted) else 0.0)))
        return self

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        k = len(batch)
        probes = [v for v in (batch.user_vector, batch.context_vector) if v is not None]
        sims = np.zeros((k, 0))
        if probes:  # one pass over the ad vectors, (k, m); the probes as columns (np.stack's layout, not its cost)
            columns = np.empty((len(probes[0]), len(probes)), dtype=np.result_type(*probes))
            for j, probe in enumerate(probes):
                columns[:, j] = probe
            sims = batch.ad_vectors @ columns
        user = sims[:, 0] if batch.user_vector is not None else np.zeros(k)
        context = sims[:, -1] if batch.context_vector is not None else np.zeros(k)
        x_ctr = similarity_features(user, context, batch.prior_ctr, self.ctr_centre_)
        x_cvr = similarity_features(user, context, batch.prior_cvr, self.cvr_centre_)
        pctr = 1 / (1 + np.exp(-(x_ctr @ self.ctr_coef_ + self.ctr_intercept_)))
        pcvr = 1 / (1 + np.exp(-(x_cvr @ self.cvr_coef_ + self.cvr_intercept_)))
        return pctr.astype(np.float64, copy=False), pcvr.astype(np.float64, copy=False)

    def save(self, path: str | Path) -> None:
        state = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}
        Path(path).write_text(json.dumps({"kind": "SimilarityScorer", "state": state}))

    @classmethod
    def load(cls, path: str | Path) -> SimilarityScorer:
        data = json.loads(Path(path).read_text())
        if data.get("kind") != "SimilarityScorer":
            raise ValueError(f"{path} is not a saved SimilarityScorer")
        scorer = cls()
        for key, value in data["state"].items():
            setattr(scorer, key, np.asarray(value) if isinstance(value, list) else value)
        return scorer


class MappingScorerAdapter:
    """Serves a scorer with the rank room's signature ``score(user, ads, context)`` (``adpilot.rank.scorer``)
    through the deliver room's ``score(CandidateBatch)``: the batch becomes the three mappings of
    ``adpilot.rank.base`` (fields a model does not read are ignored by it)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        user: dict[str, object] = {"user_id": batch.user_id, "segment_id": batch.segment,
                                   "segment": batch.segment, "recent_items": list(batch.recent_items),
                                   "hist_item_id": list(batch.recent_items)}
        if batch.user_vector is not None:
            user["hist_vec"] = batch.user_vector
        ads: dict[str, object] = {"ad_id": batch.ad_ids, "item_id": batch.product_ids,
                                  "product_id": batch.product_ids, "ad_vec": batch.ad_vectors}
        if batch.campaign_ids is not None:
            ads["campaign_id"] = batch.campaign_ids
        context = {"slot": batch.slot, "device": batch.device, "geo": batch.geo, "hour": batch.hour}
        pctr, pcvr = self.inner.score(user, ads, context)  # type: ignore[attr-defined]
        return np.asarray(pctr, dtype=np.float64), np.asarray(pcvr, dtype=np.float64)


def as_batch_scorer(scorer: object) -> Scorer:
    """``scorer`` itself when it takes one ``CandidateBatch``, wrapped when it has the rank room's
    ``score(user, ads, context)``; anything else is a configuration mistake."""
    import inspect

    from adpilot.errors import UserError

    method = getattr(scorer, "score", None)
    if method is None:
        raise UserError(f"the scorer {type(scorer).__name__} has no `score` method")
    params = [p for p in inspect.signature(method).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) == 1:
        return scorer  # type: ignore[return-value]  # score(batch): the protocol, checked by its signature
    if [p.name for p in params[:2]] == ["user", "ads"]:
        return MappingScorerAdapter(scorer)
    raise UserError(f"the scorer {type(scorer).__name__}.score takes ({', '.join(p.name for p in params)}); "
                    "expected (batch) or (user, ads, context)")


def load_scorer(path: str | Path) -> Scorer:
    """A saved scorer ready for the engine: this module's JSON ``SimilarityScorer`` or the rank room's exported
    model file (served through :class:`MappingScorerAdapter`)."""
    from adpilot.errors import UserError

    path = Path(path)
    if not path.exists():
        raise UserError(f"scorer file {path} does not exist: train one first (see `adpilot train --help`)")
    if path.suffix == ".json":
        try:
            return SimilarityScorer.load(path)
        except (ValueError, KeyError) as error:
            raise UserError(f"scorer file {path} is not a saved SimilarityScorer: {error}") from error
    from adpilot.rank.scorer import load_scorer as load_rank_scorer

    return as_batch_scorer(load_rank_scorer(path))
