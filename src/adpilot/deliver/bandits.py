"""Creative choice by Thompson sampling: each creative's CTR has a Beta posterior whose prior is centred on the
predicted CTR (worth ``prior_strength`` pseudo-impressions) and which feedback updates with real impressions and
clicks. Exploration fades by itself as evidence accumulates."""

from __future__ import annotations

import numpy as np

from adpilot.deliver.base import clip
from adpilot.errors import check_scalar


class ThompsonCreatives:
    """``select`` a creative among one ad's creatives; ``update`` is done through the counters by feedback.

    >>> b = ThompsonCreatives(prior_strength=10)
    >>> rng = np.random.default_rng(0)
    >>> picks = [b.select(np.array([0.02, 0.02]), np.array([1000, 1000]), np.array([5, 60]), rng)
    ...          for _ in range(50)]
    >>> sum(picks) >= 45  # the creative with 6% observed CTR wins almost always
    True
    """

    def __init__(self, prior_strength: float = 20.0) -> None:
        self.prior_strength = check_scalar(prior_strength, "prior_strength", gt=0)

    def posterior(self, prior_ctr: np.ndarray, impressions: np.ndarray,
                  clicks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Beta(alpha, beta) of each creative; clicks beyond impressions (late events) are capped."""
        p = clip(np.where(np.isnan(prior_ctr), 0.5, prior_ctr), 1e-4, 1 - 1e-4)
        clicks = np.minimum(clicks, impressions)
        return self.prior_strength * p + clicks, self.prior_strength * (1 - p) + impressions - clicks

    def select(self, prior_ctr: np.ndarray, impressions: np.ndarray, clicks: np.ndarray,
               rng: np.random.Generator) -> int:
        """Index of the creative whose sampled CTR is highest."""
        alpha, beta = self.posterior(prior_ctr, impressions, clicks)
        return int(np.argmax(rng.beta(alpha, beta)))
