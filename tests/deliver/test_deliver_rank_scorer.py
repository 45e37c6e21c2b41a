"""The rank room's exported scorer (signature ``score(user, ads, context)``) plugs into the decision path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deliver_world import NOON, make_world

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.scorer import MappingScorerAdapter, as_batch_scorer
from adpilot.errors import UserError
from adpilot.schema import AdRequest


def test_rank_scorer_serves_through_the_adapter(tmp_path) -> None:
    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.scorer import load_scorer

    world = make_world()
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(world.ads.ids), 3000)
    clicked = rng.random(3000) < np.where(world.ads.campaign[rows] == 1, 0.3, 0.02)  # campaign 1's ads get clicks
    frame = pd.DataFrame({"ad_id": world.ads.ids[rows], "slot": "home",
                          "ad_vec": list(world.ads.vectors[rows]), "click": clicked.astype(int)})
    model = CTRModel("lr", labels=("click",), epochs=3, max_buckets=256, seed=0).fit(frame)
    snapshot = make_world(scorer=load_scorer(model.save(tmp_path / "lr")))
    assert isinstance(snapshot.scorer, MappingScorerAdapter)
    engine = DecisionEngine(snapshot, settings=Settings(mode="test", token_secret="deliver-test-secret-0123"))
    decision = engine.decide(AdRequest(request_id="r", user_id="u2", slot="home", ts=NOON, n_ads=3,
                                       explain=True))
    assert decision.ads[0].campaign_id == "c1"  # the model learned campaign 1 gets clicked
    assert all(0 < a.pctr < 1 for a in decision.ads)


def test_a_scorer_with_another_signature_is_refused() -> None:
    class Odd:
        def score(self, a, b, c, d):  # noqa: ANN001, ANN201
            return a

    with pytest.raises(UserError, match="expected \\(batch\\) or \\(user, ads, context\\)"):
        as_batch_scorer(Odd())
    with pytest.raises(UserError, match="no `score` method"):
        as_batch_scorer(object())
