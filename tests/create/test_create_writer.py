"""The writer's decoding plan: one greedy draft first, sampled drafts after it, shot windows per draft, and a cache
key per penalty."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from adpilot.create.cache import cache_key
from adpilot.create.local import LocalLLM
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.retrieval import CopyExample
from adpilot.create.writer import CopyWriter

PRODUCT = ProductBrief.from_advertisegen("类型#上衣*颜色#白色*材质#牛仔布")
NEAR = [CopyExample(PRODUCT, f"第{i}条范文，白色牛仔上衣。") for i in range(8)]
"""Retrieved neighbours, nearest first: enough for three windows of two."""
DRAFTS = ["白色牛仔上衣，简约百搭，通勤出游都合适。", "牛仔布上衣配白色衣身，清爽利落，日常穿着很舒适。",
          "这件白色上衣选用牛仔布，挺括有型，搭配半裙或长裤都好看。"]


class RecordingLLM:
    """Answers from ``DRAFTS`` by seed and records each call's (n, temperature, seed), shots, last message and
    preferred words."""

    name = "recording"
    source = "llm"
    steers = True

    def __init__(self) -> None:
        self.calls: list[tuple[int, float, int]] = []
        self.system = ""
        self.shots: list[list[str]] = []
        self.requests: list[str] = []
        self.prefers: list[list[str]] = []

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        self.calls.append((n, temperature, seed))
        self.prefers.append(list(prefer))
        self.system = messages[0]["content"]
        self.shots.append([m["content"] for m in messages if m["role"] == "assistant"])
        self.requests.append(messages[-1]["content"])
        return [DRAFTS[(seed + i) % len(DRAFTS)] for i in range(n)]


def test_first_draft_is_greedy_and_the_others_are_sampled() -> None:
    llm = RecordingLLM()
    decisions = CopyWriter(llm, n=3, temperature=0.8, greedy_first=True).write(PRODUCT, None, CopySpec(), seed=7)
    assert llm.calls == [(1, 0.0, 7), (2, 0.8, 8)]
    assert {d.order: d.text for d in decisions}[0] == DRAFTS[7 % 3]
    assert sorted(d.order for d in decisions) == [0, 1, 2]


def test_zero_temperature_or_no_greedy_is_one_call() -> None:
    for writer_args in ({"temperature": 0.0}, {"greedy_first": False}):
        llm = RecordingLLM()
        CopyWriter(llm, n=2, **writer_args).write(PRODUCT, None, CopySpec(), seed=1)
        assert len(llm.calls) == 1 and llm.calls[0][0] == 2
    llm = RecordingLLM()
    CopyWriter(llm, n=1, temperature=0.8, greedy_first=True).write(PRODUCT, None, CopySpec(), seed=1)
    assert llm.calls == [(1, 0.0, 1)]


def test_length_target_overrides_the_shots_median() -> None:
    """The prompt asks for 0.9–1.2 × the target; without one, the shots' median length is the target."""
    shots = [CopyExample(PRODUCT, "甲" * 60), CopyExample(PRODUCT, "乙" * 70)]
    llm = RecordingLLM()
    CopyWriter(llm, n=1).write(PRODUCT, None, CopySpec(slot="detail"), shots)
    assert "58到78字" in llm.system
    CopyWriter(llm, n=1, target_chars=110).write(PRODUCT, None, CopySpec(slot="detail"), shots)
    assert "99到132字" in llm.system


def test_repeat_penalty_and_prefer_bias_are_part_of_the_model_name(tmp_path: Path) -> None:
    """Both change completions, so the prompt cache (keyed by name) must tell the settings apart."""
    path = tmp_path / "m.gguf"
    assert LocalLLM(path).name == "llama.cpp:m"
    assert LocalLLM(path, repeat_penalty=1.0).name == "llama.cpp:m@rp1"
    assert LocalLLM(path, prefer_bias=3).name == "llama.cpp:m@pb3"


def test_preferred_words_key_the_cache_and_plain_keys_stay_as_they_were() -> None:
    args = ("m", [{"role": "user", "content": "写文案"}], 1, 60, 0.0, 5)
    assert cache_key(*args) == cache_key(*args, ()) != cache_key(*args, ["牛仔布"])
    assert cache_key(*args) == hashlib.sha256(json.dumps(
        ["m", list(args[1]), 1, 60, 0.0, 5], ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def test_shot_windows_give_each_greedy_draft_the_nearest_example_and_its_own_neighbours() -> None:
    llm = RecordingLLM()
    CopyWriter(llm, n=3, temperature=0.8, shot_windows=True).write(PRODUCT, None, CopySpec(), NEAR[:3], seed=5,
                                                                   neighbours=NEAR)
    assert llm.calls == [(1, 0.0, 5), (1, 0.0, 6), (1, 0.0, 7)]
    assert llm.shots == [[NEAR[j].copy for j in window] for window in ([0, 1, 2], [0, 3, 4], [0, 5, 6])]
    llm = RecordingLLM()  # too few neighbours for three windows: sampled drafts from the usual prompt
    CopyWriter(llm, n=3, temperature=0.8, shot_windows=True).write(PRODUCT, None, CopySpec(), NEAR[:3], seed=5,
                                                                   neighbours=NEAR[:6])
    assert llm.calls == [(3, 0.8, 5)]


class GreedyEchoLLM(RecordingLLM):
    """Every greedy completion is the same copy, as short copy from formulaic shots tends to be."""

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        sampled = super().generate(messages, n, max_tokens, temperature, seed, prefer)
        return ["白色牛仔上衣，简约百搭，日常好搭配。"] * n if temperature == 0 else sampled


def test_a_window_draft_that_repeats_an_earlier_one_is_sampled_instead() -> None:
    llm = GreedyEchoLLM()
    decisions = CopyWriter(llm, n=3, temperature=0.8, shot_windows=True).write(PRODUCT, None, CopySpec(), NEAR[:3],
                                                                               seed=5, neighbours=NEAR)
    assert llm.calls == [(1, 0.0, 5), (1, 0.0, 6), (1, 0.8, 6), (1, 0.0, 7), (1, 0.8, 7)]
    assert llm.shots[2] == llm.shots[1]  # the resample keeps its window's shots
    assert {d.order: d.draft for d in decisions if d.order < 3} == {0: "白色牛仔上衣，简约百搭，日常好搭配。",
                                                                    1: DRAFTS[6 % 3], 2: DRAFTS[7 % 3]}


class AbsoluteWindowsLLM(RecordingLLM):
    """Greedy drafts of windows 1 and 2 break the absolute-terms rule in different words; a repair request (its
    reason in the last message) gets the compliant copy of ``REPAIRS`` for its seed."""

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        answers = super().generate(messages, n, max_tokens, temperature, seed, prefer)
        if "不合规" in self.requests[-1]:
            return [REPAIRS[seed]]
        return answers if seed == 5 else [["全网最好的白色牛仔上衣。", "第一名的牛仔布上衣，白色绝对百搭。"][seed - 6]]


REPAIRS = {10_006: "牛仔布白色上衣，版型利落，出游通勤都合适。", 10_007: "白色衣身配牛仔布，简洁清爽，搭配长裤很好看。"}


def test_each_failing_window_draft_is_repaired_greedily_from_its_own_window() -> None:
    llm = AbsoluteWindowsLLM()
    decisions = CopyWriter(llm, n=3, temperature=0.8, shot_windows=True).write(PRODUCT, None, CopySpec(), NEAR[:3],
                                                                               seed=5, neighbours=NEAR)
    assert llm.calls[3:] == [(1, 0.0, 10_006), (1, 0.0, 10_007)]
    assert llm.shots[3:] == llm.shots[1:3]
    assert "最" in llm.requests[3] and "第一" not in llm.requests[3]  # its own draft's reasons only
    assert {d.order: (d.action, d.text) for d in decisions if d.order in (1, 2)} == {
        1: ("regenerated", REPAIRS[10_006]), 2: ("regenerated", REPAIRS[10_007])}


class LeftOutLLM(RecordingLLM):
    """Window 1's draft leaves out 牛仔布; a coverage request (the note in the last message) is answered with
    ``COVERED`` (``STEERED`` when steered by ``prefer``), or with copy that breaks the absolute-terms rule when
    ``absolute``."""

    absolute = False

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        answers = super().generate(messages, n, max_tokens, temperature, seed, prefer)
        if "没有写到" in self.requests[-1]:
            return ["全网最好的牛仔布上衣。" if self.absolute else STEERED if prefer else COVERED] * n
        return answers


COVERED = "白色牛仔布上衣，挺括有型，通勤周末都好搭配。"
STEERED = "牛仔布做的上衣，白色衣身清爽，搭配长裤或半裙都好看。"


def test_a_window_draft_that_leaves_out_values_gets_a_plain_and_a_steered_coverage_draft_beside_it() -> None:
    llm = LeftOutLLM()
    decisions = CopyWriter(llm, n=3, temperature=0.8, shot_windows=True, cover=True).write(
        PRODUCT, None, CopySpec(), NEAR[:3], seed=5, neighbours=NEAR)
    # only draft 1 (白色牛仔上衣…) misses a value, and only 牛仔布: the same greedy prompt, then steered to it
    assert llm.calls[3:] == [(1, 0.0, 20_006), (1, 0.0, 20_006)]
    assert llm.prefers[3:] == [[], ["牛仔布"]] and llm.prefers[:3] == [[], [], []]
    assert llm.shots[3] == llm.shots[4] == llm.shots[1]
    assert llm.requests[3] == llm.requests[4]
    assert llm.requests[3].endswith("注意：上一稿没有写到这些属性：牛仔布。请把它们自然地写进文案。")
    by_order = {d.order: d for d in decisions}
    assert by_order[20_001].text == COVERED and by_order[20_001].origin == "llm"
    assert by_order[30_001].text == STEERED and by_order[30_001].origin == "llm"
    assert by_order[1].text == DRAFTS[0]  # the draft itself stays


def test_a_coverage_draft_that_breaks_a_rule_is_rejected_not_repaired() -> None:
    llm = LeftOutLLM()
    llm.absolute = True
    decisions = CopyWriter(llm, n=3, temperature=0.8, shot_windows=True, cover=True).write(
        PRODUCT, None, CopySpec(), NEAR[:3], seed=5, neighbours=NEAR)
    assert len(llm.calls) == 5
    for order in (20_001, 30_001):
        rejected = next(d for d in decisions if d.order == order)
        assert rejected.text is None and rejected.action == "rejected" and rejected.reasons


def test_sampled_drafts_get_sampled_coverage_drafts_and_none_without_cover() -> None:
    llm = LeftOutLLM()
    CopyWriter(llm, n=3, temperature=0.8, cover=True).write(PRODUCT, None, CopySpec(), NEAR[:3], seed=5)
    assert llm.calls == [(3, 0.8, 5), (1, 0.8, 20_006), (1, 0.8, 20_006)]  # draft 1 is DRAFTS[0], without 牛仔布
    assert llm.prefers == [[], [], ["牛仔布"]]
    llm = LeftOutLLM()
    llm.steers = False  # e.g. an OpenAI-compatible server: a steered call would repeat the plain one
    CopyWriter(llm, n=3, temperature=0.8, cover=True).write(PRODUCT, None, CopySpec(), NEAR[:3], seed=5)
    assert llm.calls == [(3, 0.8, 5), (1, 0.8, 20_006)]
    llm = LeftOutLLM()
    CopyWriter(llm, n=3, temperature=0.8).write(PRODUCT, None, CopySpec(), NEAR[:3], seed=5)
    assert llm.calls == [(3, 0.8, 5)]
