"""The studio writes only compliant creatives, atomically per (ad, audience), resumes, and caches completions."""

from __future__ import annotations

import json

import pytest
from create_helpers import ScriptedLLM

from adpilot.create.cache import CachedLLM
from adpilot.create.compliance import Policy, check
from adpilot.create.prompts import CopySpec
from adpilot.create.studio import Studio, audiences, human_pool, jobs
from adpilot.create.template import TemplateLLM
from adpilot.create.writer import CopyWriter
from adpilot.errors import UserError

GOOD = ["这款外套版型简约，白色衣身百搭又耐看，通勤出游都合适。", "牛仔面料挺括有型，细节刺绣增添看点，穿着舒适自在。"]


def test_audiences_carry_readable_interests_only(store) -> None:  # type: ignore[no-untyped-def]
    people = audiences(store.con)
    assert [a.key for a in people] == ["all", "segment:1"]
    assert people[1].interests == ("通勤", "简约")
    assert "u_secret" not in repr(people)


def test_human_pool_comes_in_creative_id_order_whatever_the_insert_order(store) -> None:  # type: ignore[no-untyped-def]
    """Retrieval breaks ties by pool order, so the pool must not follow the store's physical row order."""
    for creative_id, ad_id in (("h3", "a1"), ("h1", "a3"), ("h2", "a2"), ("h0", "a1")):
        store.con.execute("INSERT INTO creatives (creative_id, ad_id, text, source) VALUES (?, ?, ?, 'human')",
                          [creative_id, ad_id, f"文案{creative_id}"])
    assert [e.copy for e in human_pool(store.con)] == ["文案h0", "文案h1", "文案h2", "文案h3"]


def test_template_backend_writes_labelled_compliant_creatives(store) -> None:  # type: ignore[no-untyped-def]
    studio = Studio(store.con, CopyWriter(CachedLLM(TemplateLLM(), store.con), n=2))
    stats = studio.run(jobs(store.con, campaign_id="c1") + jobs(store.con, campaign_id="c2"))
    rows = store.con.execute("SELECT ad_id, text, language, source, model, scores FROM creatives").fetchall()
    assert stats.pairs == 6 and stats.written == len(rows) > 0
    assert {r[0] for r in rows} == {"a1", "a2", "a3"}  # the product without attributes still gets copy
    for _ad, text, language, source, model, scores in rows:
        assert source == "template" and model == "template"
        assert check(text, Policy(language=language)) == []
        assert {"relevance", "coverage", "rank"} <= set(json.loads(scores))
    assert store.con.execute("SELECT language FROM creatives WHERE ad_id = 'a2'").fetchone()[0] == "en"


def test_crash_loses_no_finished_pair_and_rerun_resumes_from_cache(store) -> None:  # type: ignore[no-untyped-def]
    todo = jobs(store.con, campaign_id="c1")
    crashing = CachedLLM(ScriptedLLM(GOOD, fail_on=2), store.con)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Studio(store.con, CopyWriter(crashing, n=2)).run(todo)
    first = store.con.execute("SELECT count(DISTINCT (ad_id, audience)) FROM creatives").fetchone()[0]
    assert first == 1  # the finished pair is stored, the crashed one left nothing behind
    rerun = CachedLLM(ScriptedLLM(GOOD), store.con)
    stats = Studio(store.con, CopyWriter(rerun, n=2)).run(todo)
    assert stats.skipped == 1 and stats.pairs == len(todo) == 4
    # the done pair is not asked again; three pairs are, the English ad twice (Chinese drafts → repair call)
    assert (rerun.hits, rerun.misses) == (0, 5)
    store.con.execute("DELETE FROM creative_decisions")
    again = CachedLLM(ScriptedLLM(["never called"]), store.con)
    Studio(store.con, CopyWriter(again, n=2)).run(todo)
    assert again.misses == 0 and again.hit_rate == 1.0


def test_garbage_and_empty_output_is_rejected_with_reasons(store) -> None:  # type: ignore[no-untyped-def]
    llm = ScriptedLLM(["", "!!!!!!!!!!!!", "全网最低价 100% 有效"])
    stats = Studio(store.con, CopyWriter(llm, n=3)).run(jobs(store.con, ad_id="a1", with_segments=False))
    reasons = [json.loads(r[0]) for r in store.con.execute(
        "SELECT reasons FROM creative_decisions WHERE action = 'rejected'").fetchall()]
    assert stats.written + stats.rejected + stats.actions.get("duplicate", 0) == 3
    assert stats.rejected >= 2 and all(reasons)
    for (text,) in store.con.execute("SELECT text FROM creatives").fetchall():
        assert check(text, Policy()) == []


def test_unknown_selection_is_a_user_error(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="no ads match"):
        jobs(store.con, campaign_id="nope")
    with pytest.raises(UserError, match="--campaign"):
        jobs(store.con)


def test_near_duplicates_are_dropped_and_odd_products_still_get_copy(store) -> None:  # type: ignore[no-untyped-def]
    twin = GOOD[0].replace("耐看", "好看")
    decisions = CopyWriter(ScriptedLLM([GOOD[0], twin, GOOD[1]]), n=3).write(
        jobs(store.con, ad_id="a1")[0].product, None, CopySpec())
    assert sorted(d.action for d in decisions) == ["accepted", "accepted", "duplicate"]
    store.con.execute("INSERT INTO products VALUES ('p4', 'Куртка', ?, NULL, MAP {'цвет': 'белый'}, 10.0, NULL, "
                      "'zh')", ["описание " * 1200])
    store.con.execute("INSERT INTO ads VALUES ('a4', 'c4', 'p4', NULL, 'active')")
    stats = Studio(store.con, CopyWriter(TemplateLLM(), n=1)).run(jobs(store.con, ad_id="a4"))
    assert stats.pairs == 2 and stats.written + stats.rejected == 2


class SilentLLM:
    """A backend that answers with no completions at all (or None)."""

    name = "silent"
    source = "llm"
    steers = False

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        return [] if seed % 2 else None


def test_a_backend_that_returns_nothing_leaves_only_rejections(store) -> None:  # type: ignore[no-untyped-def]
    stats = Studio(store.con, CopyWriter(SilentLLM(), n=2)).run(jobs(store.con, ad_id="a1"))
    assert stats.written == 0 and stats.rejected == 4
    assert store.con.execute("SELECT count(*) FROM creatives").fetchone()[0] == 0
    actions = store.con.execute("SELECT DISTINCT action FROM creative_decisions").fetchall()
    assert actions == [("rejected",)]
