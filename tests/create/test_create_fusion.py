"""The fused candidate: sentences of the model's accepted drafts that agree most with the retrieved copies, one
opening, no repeats, reviewed like any draft, labelled as the model's, and costing no model call."""

from __future__ import annotations

import pytest
from create_helpers import ScriptedLLM, write_with_and_without

from adpilot.create.evaluate import sample_indices
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.retrieval import CopyExample, sentences
from adpilot.create.writer import CopyWriter, fuse

DRESS = ProductBrief.from_advertisegen("类型#裙*颜色#白色*材质#雪纺*风格#复古")
NEIGHBOURS = [
    CopyExample(ProductBrief.from_advertisegen("类型#裙*颜色#白色"), "这款连衣裙白色裙身，清新干净。雪纺面料轻盈透气。"),
    CopyExample(ProductBrief.from_advertisegen("类型#裙*风格#复古"), "复古的设计，优雅大方，很显气质。"),
]
DRAFTS = [
    "这款连衣裙白色裙身，清新干净又百搭。月亮在天上慢慢地走着呢。",
    "这款连衣裙选用雪纺面料，轻盈透气很舒服。复古的设计，优雅大方很显气质。",
]


def test_fusion_keeps_consensual_sentences_one_opening_and_the_drafts_order() -> None:
    pseudo = [e.copy for e in NEIGHBOURS]
    text = fuse(DRAFTS, pseudo, DRESS, target_chars=30, draft_weight=0.0)  # agreement with the neighbours alone
    parts = sentences(text)
    assert parts == ["这款连衣裙白色裙身，清新干净又百搭。", "复古的设计，优雅大方很显气质。"]
    # the other draft's opening would repeat the first; the stray sentence is only filler once nothing else is left
    longest = fuse(DRAFTS, pseudo, DRESS, target_chars=200, draft_weight=0.0)
    assert "选用雪纺" not in longest and longest.endswith("月亮在天上慢慢地走着呢。")
    assert fuse([], pseudo, DRESS, 50) == ""


def test_a_sentence_the_other_drafts_also_say_outweighs_one_only_a_neighbour_says() -> None:
    plain = ProductBrief.from_advertisegen("类型#裙*颜色#白色")
    drafts = ["这款连衣裙白色裙身，清新干净。腰间系带设计，勾勒纤细腰身。", "白色连衣裙，简约大方。腰间的系带设计，勾勒出纤细的腰身。",
              "白色雪纺连衣裙，轻盈飘逸。复古的设计，优雅大方很显气质。"]
    pseudo = ["复古的设计，很显气质。"]
    assert "复古" in fuse(drafts, pseudo, plain, 20, draft_weight=0.0)
    assert "系带" in fuse(drafts, pseudo, plain, 20, draft_weight=1.0)
    assert fuse(drafts[2:], pseudo, plain, 20, draft_weight=1.0) == fuse(drafts[2:], pseudo, plain, 20, draft_weight=0.0)


def test_fused_copy_is_ranked_first_reviewed_and_costs_no_model_call() -> None:
    longer = [DRAFTS[0], DRAFTS[1] + "裙摆宽大，走起路来随风摇曳。"]  # so that the fused copy is no draft's whole text
    without, with_it = write_with_and_without(longer, DRESS, NEIGHBOURS, fusion=True)
    assert with_it[0].origin == "fusion" and with_it[0].action == "accepted" and with_it[0].order == 3
    assert "月亮" not in (with_it[0].text or "")
    assert {d.text for d in with_it if d.origin == "llm"} == {d.text for d in without}


def test_fused_copy_breaking_the_slot_limit_is_rejected_not_shown() -> None:
    short = ["这款连衣裙白色裙身，清新干净。", "面料很好。雪纺面料轻盈透气，复古的设计优雅大方。"]
    decisions = CopyWriter(ScriptedLLM(short), n=2, fusion=True, target_chars=40).write(
        DRESS, None, CopySpec(slot="banner"), NEIGHBOURS[:1], neighbours=NEIGHBOURS)
    fused = next(d for d in decisions if d.origin == "fusion")
    assert fused.action == "rejected" and fused.text is None and any("length" in r for r in fused.reasons)
    assert decisions[0].origin == "llm" and decisions[0].text


def test_no_fused_copy_from_a_single_draft() -> None:
    decisions = CopyWriter(ScriptedLLM(DRAFTS[1:]), n=1, fusion=True).write(
        DRESS, None, CopySpec(slot="detail"), NEIGHBOURS[:1], neighbours=NEIGHBOURS)
    assert [d.origin for d in decisions] == ["llm"]


def test_offset_gives_held_out_pairs_for_tuning() -> None:
    reported = sample_indices(535, 46, seed=0)
    tuned = sample_indices(535, 46, seed=0, offset=100)
    assert not set(reported) & set(tuned) and len(tuned) == 46
    assert sample_indices(535, 10, seed=0, offset=100) == tuned[:10]  # prefix-stable from the offset too
    with pytest.raises(ValueError, match="offset"):
        sample_indices(10, 3, seed=0, offset=10)
    with pytest.raises(ValueError, match="limit"):
        sample_indices(10, 0, seed=0)


def test_a_sentence_in_the_copies_words_outweighs_one_matching_their_characters_across_words() -> None:
    top = ProductBrief.from_advertisegen("类型#上衣")
    pseudo = ["这款外套面料柔软亲肤，穿着舒适透气，版型宽松显瘦。"]
    drafts = ["面料柔软亲，肤穿着舒适透。柔软亲肤的面料，舒适透气又显瘦。"]
    assert fuse(drafts, pseudo, top, 10, word_weight=0.0) == "面料柔软亲，肤穿着舒适透。"  # char BLEU alone
    assert fuse(drafts, pseudo, top, 10) == "柔软亲肤的面料，舒适透气又显瘦。"
