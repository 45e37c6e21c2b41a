"""Compliance: every listed term is caught, repairs pass the check, and no violating text ever survives."""

from __future__ import annotations

import pytest
from create_helpers import ScriptedLLM
from hypothesis import given, settings
from hypothesis import strategies as st

from adpilot.create.compliance import ABSOLUTE_ZH, FINANCE_ZH, MEDICAL_ZH, Policy, check, repetition, rewrite
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.writer import CopyWriter

CLEAN = "这款白色牛仔外套版型简约，衣身的刺绣细节很有看点，日常通勤搭配轻松又舒适。"
BANNED = [*ABSOLUTE_ZH, "最", "最佳", "最高", "最低", "100%", "１００％", "NO.1", "TOP1", "best", "Best-selling",
          "number one", "#1", "guaranteed", *MEDICAL_ZH, *FINANCE_ZH]


@pytest.mark.parametrize("term", BANNED)
def test_every_listed_term_is_caught(term: str) -> None:
    text = CLEAN[:10] + term + CLEAN[10:]
    assert check(text, Policy()), term


def test_clean_copy_passes_and_time_words_with_zui_are_allowed() -> None:
    assert check(CLEAN, Policy()) == []
    assert check("最近上新的白色牛仔外套，版型简约，衣身刺绣很有看点。", Policy()) == []


def test_medical_words_allowed_only_for_medicine() -> None:
    text = "这款药膏用于缓解不适，治疗轻度皮肤瘙痒，请遵医嘱使用。"
    assert [v.rule for v in check(text, Policy())] == ["medical"]
    assert check(text, Policy(medical_allowed=Policy.medical_category(["医药", "药品"]))) == []


def test_brand_length_language_artefacts_and_loops() -> None:
    assert [v.rule for v in check(CLEAN + "比Nike更好", Policy(banned_brands=("nike",)))] == ["brand"]
    assert [v.rule for v in check(CLEAN * 3, Policy(max_chars=60))] == ["length", "repetition"]
    assert "language" in [v.rule for v in check("This is an English sentence for zh.", Policy())]
    assert "artefact" in [v.rule for v in check("```\n" + CLEAN, Policy())]
    assert repetition("好好好好看的外套，真的好看。") and not repetition(CLEAN)
    assert [v.rule for v in check("", Policy())] == ["empty"]


def test_rewrite_repairs_typical_violations() -> None:
    draft = "全网最低价！这款外套是销量冠军，100%纯棉。能治疗失眠。"
    fixed = rewrite(draft, Policy())
    assert check(fixed, Policy()) == [], fixed
    assert "治疗" not in fixed and "纯棉" in fixed


words = st.sampled_from(["外套", "白色", "简约", "舒适", "，", "。", "百搭", "刺绣", "看点", "通勤", "Nike", "好看",
                         "the", " ", "!", *BANNED])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(words, min_size=0, max_size=60).map("".join), min_size=1, max_size=4))
def test_no_violation_survives_the_writer(drafts: list[str]) -> None:
    """Whatever the model says (twice: draft and repair), every text the writer returns passes the check."""
    writer = CopyWriter(ScriptedLLM(drafts), n=3, banned_brands=("Nike",))
    spec = CopySpec(slot="feed")
    decisions = writer.write(ProductBrief.from_advertisegen("类型#上衣*颜色#白色"), None, spec)
    policy = writer.policy(ProductBrief(), spec)
    for d in decisions:
        assert d.action in ("accepted", "regenerated", "rewritten", "rejected", "duplicate")
        if d.text is not None:
            assert check(d.text, policy) == [], (d.draft, d.text)
        else:
            assert d.reasons, d
