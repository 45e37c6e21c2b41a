"""Prompts, retrieval and reference metrics."""

from __future__ import annotations

import pytest

from adpilot.create.metrics import bleu4, mean_interval, rouge
from adpilot.create.prompts import Audience, CopySpec, ProductBrief, build_messages, parse_brief
from adpilot.create.retrieval import CopyExample, CopyPool, read_examples
from adpilot.errors import InputFileError, UserError


def test_brief_round_trip_and_no_personal_data() -> None:
    product = ProductBrief.from_record("牛仔外套", {"材质": "牛仔布", "颜色": ""}, 199, "Acme", ["服装"], "x" * 10_000)
    audience = Audience("年轻上班族", ("通勤", "简约"), key="segment:1")
    messages = build_messages(product, audience, CopySpec(slot="feed"))
    fields = parse_brief(messages[-1]["content"])
    assert fields["title"] == "牛仔外套" and fields["attributes"] == "材质#牛仔布" and fields["price_band"] == "中端"
    assert fields["audience"] == "年轻上班族" and fields["interests"] == "通勤、简约"
    assert len(fields["description"]) == 300  # a 10,000-char description is cut, the prompt stays small
    assert "segment:1" not in messages[-1]["content"]


def test_shots_become_exchanges_and_repair_reason_is_in_the_prompt() -> None:
    shot = (ProductBrief.from_advertisegen("类型#裙*颜色#红色"), "红色连衣裙，温柔大方。")
    messages = build_messages(ProductBrief.from_advertisegen("类型#裤"), None, CopySpec(), [shot],
                              repair_reason="absolute: 最")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == shot[1] and "absolute: 最" in messages[-1]["content"]
    english = build_messages(ProductBrief(title="Sneaker"), None, CopySpec(language="en"))
    assert english[0]["content"].startswith("You") and "Product: Sneaker" in english[-1]["content"]


def test_a_coverage_repair_names_the_values_left_out_after_the_brief() -> None:
    product = ProductBrief.from_advertisegen("类型#裙*风格#文艺*图案#卡通")
    request = build_messages(product, None, CopySpec(), missing_values=["文艺", "卡通"])[-1]["content"]
    assert parse_brief(request)["attributes"] == "类型#裙*风格#文艺*图案#卡通"
    assert request.endswith("\n注意：上一稿没有写到这些属性：文艺、卡通。请把它们自然地写进文案。")
    english = build_messages(ProductBrief(title="Sneaker", attributes=(("colour", "red"), ("sole", "gum"))), None,
                             CopySpec(language="en"), missing_values=["gum"])[-1]["content"]
    assert english.endswith("the last draft left out these attributes: gum. Work them into the copy naturally.")


def test_spec_rejects_unknown_language_and_slot() -> None:
    with pytest.raises(UserError, match="`language`"):
        CopySpec(language="fr")
    with pytest.raises(UserError, match="`slot`"):
        CopySpec(slot="billboard")


def test_retrieval_prefers_attribute_overlap_and_excludes_the_reference() -> None:
    examples = [CopyExample(ProductBrief.from_advertisegen(c), s) for c, s in [
        ("类型#裙*颜色#红色*风格#复古", "复古红裙"), ("类型#裤*颜色#黑色", "黑色长裤"), ("类型#裙*颜色#红色", "红裙")]]
    pool = CopyPool(k=2).fit(examples)
    query = ProductBrief.from_advertisegen("类型#裙*颜色#红色*风格#复古")
    assert pool.query(query) == [0, 2]
    assert pool.query(query, exclude_copy="复古红裙") == [2, 1]


def test_read_examples_errors_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"content": "类型#裙"}\n', encoding="utf-8")
    with pytest.raises(InputFileError, match="line 1"):
        read_examples(bad)
    with pytest.raises(InputFileError, match="does not exist"):
        read_examples(tmp_path / "missing.jsonl")


def test_metrics_follow_the_protocol() -> None:
    ref = "简约而不简单的牛仔外套，白色的衣身十分百搭。"
    assert bleu4(ref, ref) == pytest.approx(100.0)
    assert 0 < bleu4("简约的牛仔外套，很百搭。", ref) < 100
    scores = rouge("简约的牛仔外套，很百搭。", ref)
    assert 0 < scores["rouge-l"] < 100 and scores["rouge-1"] >= scores["rouge-2"]
    assert rouge("", ref) == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0} and bleu4("", ref) == 0.0
    mean, low, high = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert low <= mean == 2.5 <= high
