"""The learned selector: features without the reference, a ridge fit that recovers a planted preference, a
save/load round trip, refusal of stale or garbled weights and of training on the reported prefix; the hybrid
fused candidate that may borrow the neighbours' human sentences."""

from __future__ import annotations

import numpy as np
import pytest
from create_helpers import ScriptedLLM

from adpilot.create.evaluate import REPORTED_PAIRS, selector_groups
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.retrieval import CopyExample
from adpilot.create.selector import DEFAULT_PATH, FEATURES, Selector, candidate_features, default_selector
from adpilot.create.writer import CopyWriter, fuse
from adpilot.errors import InputFileError, UserError

DRESS = ProductBrief.from_advertisegen("类型#裙*颜色#白色*材质#雪纺*风格#复古")
NEIGHBOURS = [
    CopyExample(ProductBrief.from_advertisegen("类型#裙*颜色#白色"), "这款连衣裙白色裙身，清新干净。雪纺面料轻盈透气。"),
    CopyExample(ProductBrief.from_advertisegen("类型#裙*风格#复古"), "复古的设计，优雅大方，很显气质。雪纺面料轻盈透气。"),
    CopyExample(ProductBrief.from_advertisegen("类型#裙*材质#雪纺"), "雪纺面料轻盈透气，复古的设计很显气质。"),
]
DRAFTS = ["这款连衣裙白色裙身，清新干净又百搭。月亮在天上慢慢地走着呢。",
          "这款连衣裙选用雪纺面料，很舒服。今天的天气真的非常好啊。"]


def test_features_are_per_candidate_and_never_need_the_reference() -> None:
    texts = ["白色雪纺裙，复古优雅。", "一条裙子。"]
    x = candidate_features(texts, ["llm", "fusion"], [e.copy for e in NEIGHBOURS], DRESS, target_chars=10)
    assert x.shape == (2, len(FEATURES))
    column = dict(zip(FEATURES, x.T, strict=True))
    assert column["coverage"][0] > column["coverage"][1] and list(column["fusion"]) == [0.0, 1.0]
    assert column["length_gap"][0] == pytest.approx(np.log(11 / 10))
    with pytest.raises(ValueError, match="origins"):
        candidate_features(texts, ["llm"], [], DRESS, 10)


def test_fit_recovers_a_planted_preference_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(60):
        x = rng.normal(size=(4, len(FEATURES))) + rng.normal(size=len(FEATURES))  # per-group offsets cancel out
        groups.append((x, 2.0 * x[:, FEATURES.index("coverage")] - x[:, FEATURES.index("length_gap")]))
    selector = Selector.fit(groups, l2=0.01, provenance={"pairs": 60})
    weights = dict(zip(FEATURES, selector.weights, strict=True))
    assert max(weights, key=lambda f: abs(weights[f])) == "coverage" and weights["length_gap"] < 0
    again = Selector.load(selector.save(tmp_path / "w.json"))
    assert again == selector and np.allclose(again.score(groups[0][0]), selector.score(groups[0][0]))
    assert int(np.argmax(selector.score(groups[0][0]))) == int(np.argmax(groups[0][1]))


def test_bad_weights_and_bad_training_data_are_refused(tmp_path) -> None:
    (tmp_path / "garbled.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "stale.json").write_text('{"features": ["agreement"], "weights": [1], "mean": [0], "scale": [1]}',
                                         encoding="utf-8")
    for name in ("garbled.json", "stale.json", "missing.json"):
        with pytest.raises(InputFileError, match=name):
            Selector.load(tmp_path / name)
    with pytest.raises(ValueError, match="two or more candidates"):
        Selector.fit([(np.zeros((1, len(FEATURES))), np.zeros(1))])


def test_shipped_weights_load_and_say_how_they_were_fitted() -> None:
    selector = default_selector()
    if not DEFAULT_PATH.is_file():
        pytest.skip("no shipped selector.json")
    assert selector is not None and selector.provenance["offset"] >= REPORTED_PAIRS
    assert "fit-selector" in selector.provenance["command"]


def test_writer_ranks_by_the_selector_and_the_hybrid_borrows_human_sentences() -> None:
    prefer_coverage = Selector(tuple(float(f == "coverage") for f in FEATURES), (0.0,) * len(FEATURES),
                               (1.0,) * len(FEATURES))
    decisions = CopyWriter(ScriptedLLM(DRAFTS), n=2, fusion=True, hybrid=True, selector=prefer_coverage).write(
        DRESS, None, CopySpec(slot="detail"), NEIGHBOURS[:1], neighbours=NEIGHBOURS)
    live = [d for d in decisions if d.text is not None]
    assert [d.rank_score for d in live] == sorted((d.rank_score for d in live), reverse=True)
    hybrid = next(d for d in decisions if d.origin == "retrieval")
    assert hybrid.order == 4 and "雪纺面料轻盈透气" in (hybrid.text or "")
    # a human sentence is scored against the other neighbours' copies only, never against itself
    alone = fuse([], [NEIGHBOURS[0].copy], DRESS, 40, human=[NEIGHBOURS[0].copy])
    assert alone == fuse([], [], DRESS, 40, human=[NEIGHBOURS[0].copy])


def test_selector_training_refuses_the_reported_prefix() -> None:
    refs = NEIGHBOURS * 20
    writer = CopyWriter(ScriptedLLM(DRAFTS), n=2, fusion=True)
    with pytest.raises(UserError, match="reported prefix"):
        selector_groups(refs, writer, offset=0)
    groups = selector_groups(refs, writer, k=1, limit=3, offset=REPORTED_PAIRS, neighbours=2)
    assert len(groups) == 3 and all(x.shape == (len(y), len(FEATURES)) for x, y in groups)
