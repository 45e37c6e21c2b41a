"""The extractive candidate: sentences of the retrieved neighbours' copies, reviewed like a draft, labelled as
retrieval (never as the model's), and never built from the reference under evaluation."""

from __future__ import annotations

import pytest
from create_helpers import ScriptedLLM, write_with_and_without

from adpilot.create.evaluate import evaluate
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.retrieval import CopyExample, assemble_copy
from adpilot.create.studio import Studio, jobs
from adpilot.create.writer import CopyWriter, Decision
from adpilot.errors import UserError

DRESS = ProductBrief.from_advertisegen("类型#裙*颜色#白色*材质#雪纺*风格#复古")
NEIGHBOURS = [
    CopyExample(ProductBrief.from_advertisegen("类型#裙*颜色#白色"), "白色裙身清新干净。裙摆飘逸灵动。"),
    CopyExample(ProductBrief.from_advertisegen("类型#上衣*材质#雪纺"), "这件上衣选用雪纺，轻盈透气。"),
    CopyExample(ProductBrief.from_advertisegen("类型#裙*材质#雪纺*风格#复古"), "复古雪纺裙，优雅大方。"),
]
DRAFTS = ["白色雪纺连衣裙，复古又优雅，约会出游都合适。", "这款裙子选用雪纺面料，白色裙身，复古气质十足。"]


def test_assembly_covers_the_values_from_neighbours_of_the_same_type() -> None:
    text = assemble_copy(DRESS, NEIGHBOURS, target_chars=16)
    assert text == "复古雪纺裙，优雅大方。白色裙身清新干净。"  # two values in one sentence beat one each
    assert "上衣" not in assemble_copy(DRESS, NEIGHBOURS, target_chars=200)  # a top's sentence never joins
    assert assemble_copy(DRESS, [], target_chars=50) == ""


def test_extractive_candidate_is_reviewed_labelled_and_costs_no_model_call() -> None:
    without, with_it = write_with_and_without(DRAFTS, DRESS, NEIGHBOURS, extractive=True)
    assert [d.origin for d in without] == ["llm", "llm"]
    retrieved = [d for d in with_it if d.origin == "retrieval"]
    assert len(retrieved) == 1 and retrieved[0].order == 2 and retrieved[0].text
    assert {d.text for d in with_it if d.origin == "llm"} == {d.text for d in without}


def test_extractive_candidate_breaking_the_law_is_rewritten_by_rule_not_regenerated() -> None:
    loud = [CopyExample(ProductBrief.from_advertisegen("类型#裙*颜色#白色"), "白色是今年最好看的颜色，清新耐看。裙摆飘逸灵动。")]
    llm = ScriptedLLM(DRAFTS)
    decisions = CopyWriter(llm, n=1, extractive=True).write(DRESS, None, CopySpec(slot="detail"), loud)
    retrieved = next(d for d in decisions if d.origin == "retrieval")
    assert llm.calls == 1 and retrieved.action == "rewritten" and "最" not in (retrieved.text or "")
    assert any(r.startswith("absolute") for r in retrieved.reasons)


class NeighbourSpy:
    """A writer that records what it was shown and answers with its first shot's copy."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []

    def write(self, product, audience, spec, shots, seed=0, neighbours=None):  # type: ignore[no-untyped-def]
        self.seen.append((product.attribute_text, [e.copy for e in [*shots, *(neighbours or [])]]))
        return [Decision(shots[0].copy, shots[0].copy, "accepted")]


def test_evaluation_never_shows_the_reference_and_has_an_extractive_baseline() -> None:
    refs = NEIGHBOURS + [CopyExample(DRESS, "白色雪纺裙，复古优雅。")]
    spy = NeighbourSpy()
    feed = CopySpec(slot="feed")  # the detail slot's minimum length would keep these short copies out of the pool
    evaluate(refs, spy, k=2, neighbours=3, spec=feed)  # type: ignore[arg-type]
    by_product = {r.product.attribute_text: r.copy for r in refs}
    assert len(spy.seen) == 4 and all(by_product[p] not in copies for p, copies in spy.seen)
    result = evaluate(refs, None, baseline="extractive", neighbours=3, spec=feed)
    assert len(result.rows) == 4 and result.outputs[-1]
    with pytest.raises(UserError, match="baseline"):
        evaluate(refs, None, baseline="oracle")


def test_studio_stores_an_extractive_winner_as_retrieval(store) -> None:  # type: ignore[no-untyped-def]
    from adpilot.create.retrieval import CopyPool

    pool = CopyPool(k=1).fit([CopyExample(ProductBrief.from_advertisegen("材质#牛仔布*颜色#白色"),
                                          "白色牛仔布外套，简约百搭又耐看。")])
    writer = CopyWriter(ScriptedLLM(["好看。"]), n=1, extractive=True, repair=False)  # the draft is a fragment
    Studio(store.con, writer, pool, slot="feed").run(jobs(store.con, ad_id="a1", with_segments=False))
    rows = store.con.execute("SELECT source, text FROM creatives WHERE ad_id = 'a1'").fetchall()
    assert rows == [("retrieval", "白色牛仔布外套，简约百搭又耐看。")]
