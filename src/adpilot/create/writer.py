"""From a brief to reviewed variants: generate ``n`` drafts, check each, repair the failures (regenerate with the
reason in the prompt, then rewrite by rule), reject what cannot be repaired, drop near-duplicates, and rank the
survivors by a reference-free consensus score. Every draft leaves a :class:`Decision` with its reason."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from adpilot.create.base import LLM
from adpilot.create.compliance import Policy, check, normalise, rewrite
from adpilot.create.metrics import bleu4, ngram_cosine
from adpilot.create.prompts import Audience, CopySpec, ProductBrief, build_messages
from adpilot.create.retrieval import CopyExample
from adpilot.create.scoring import coverage
from adpilot.errors import check_scalar

ACTIONS = ("accepted", "regenerated", "rewritten", "rejected", "duplicate")
REPAIR_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class Decision:
    """What happened to one draft: ``text`` is the compliant copy (``None`` when rejected or duplicate)."""

    draft: str
    text: str | None
    action: str
    reasons: tuple[str, ...] = ()
    rank_score: float = 0.0


def consensus(candidates: Sequence[str], shot_copies: Sequence[str], product: ProductBrief,
              coverage_weight: float = 20.0) -> list[float]:
    """Reference-free selection score (minimum-Bayes-risk style): mean char BLEU to the other candidates and to
    the retrieved examples' copies, plus attribute coverage. Never looks at the reference."""
    scores = []
    for i, text in enumerate(candidates):
        peers = [c for j, c in enumerate(candidates) if j != i] + list(shot_copies)
        agreement = statistics.fmean(bleu4(text, p) for p in peers) if peers else 0.0
        scores.append(agreement + coverage_weight * coverage(text, product))
    return scores


class CopyWriter:
    """Configuration of one writing pass; :meth:`write` does the work."""

    def __init__(self, llm: LLM, n: int = 4, max_tokens: int = 160, temperature: float = 0.8, repair: bool = True,
                 dedupe_threshold: float = 0.9, banned_brands: Sequence[str] = ()) -> None:
        self.llm = llm
        self.n = int(check_scalar(n, "n", ge=1, le=32))
        self.max_tokens = int(check_scalar(max_tokens, "max_tokens", ge=8))
        self.temperature = check_scalar(temperature, "temperature", ge=0, le=2)
        self.repair = repair
        self.dedupe_threshold = check_scalar(dedupe_threshold, "dedupe_threshold", gt=0, le=1)
        self.banned_brands = tuple(banned_brands)

    def policy(self, product: ProductBrief, spec: CopySpec) -> Policy:
        return Policy(max_chars=spec.max_chars, language=spec.language, banned_brands=self.banned_brands,
                      medical_allowed=Policy.medical_category(product.category))

    def write(self, product: ProductBrief, audience: Audience | None, spec: CopySpec,
              shots: Sequence[CopyExample] = (), seed: int = 0) -> list[Decision]:
        """Decisions for ``n`` drafts, accepted ones first and best-ranked first."""
        policy = self.policy(product, spec)
        pairs = [(s.product, s.copy) for s in shots]
        target = int(statistics.median(len(s.copy) for s in shots)) if shots else spec.max_chars * 3 // 4
        messages = build_messages(product, audience, spec, pairs, target_chars=target)
        drafts = self.llm.generate(messages, n=self.n, max_tokens=self.max_tokens, temperature=self.temperature,
                                   seed=seed)
        decisions = [self._review(d, policy) for d in drafts]
        failing = [i for i, d in enumerate(decisions) if d.action != "accepted"]
        if failing and self.repair:
            reasons = "；".join(sorted({r for i in failing for r in decisions[i].reasons}))[:300]
            retry = self.llm.generate(build_messages(product, audience, spec, pairs, repair_reason=reasons,
                                                     target_chars=target),
                                      n=len(failing), max_tokens=self.max_tokens, temperature=self.temperature,
                                      seed=seed + REPAIR_SEED_OFFSET)
            for i, new in zip(failing, retry, strict=True):
                decisions[i] = self._repair(decisions[i], new, policy)
        return self._rank(self._dedupe(decisions), [s.copy for s in shots], product)

    @staticmethod
    def _review(draft: str, policy: Policy) -> Decision:
        problems = check(draft, policy)
        if not problems:
            return Decision(draft, normalise(draft), "accepted")
        return Decision(draft, None, "rejected", tuple(str(p) for p in problems))

    @staticmethod
    def _repair(failed: Decision, regenerated: str, policy: Policy) -> Decision:
        """Regenerated draft if it passes, else the rule rewrite of either draft, else rejected."""
        if not check(regenerated, policy):
            return Decision(failed.draft, normalise(regenerated), "regenerated", failed.reasons)
        for candidate in (failed.draft, regenerated):
            fixed = rewrite(candidate, policy)
            if not check(fixed, policy):
                return Decision(failed.draft, fixed, "rewritten", failed.reasons)
        return failed

    def _dedupe(self, decisions: list[Decision]) -> list[Decision]:
        kept: list[str] = []
        result = []
        for d in decisions:
            if d.text is not None:
                twin = next((k for k in kept if ngram_cosine(d.text, k) >= self.dedupe_threshold), None)
                if twin is not None:
                    d = Decision(d.draft, None, "duplicate", (f"near-duplicate of {twin[:20]}…",))
                else:
                    kept.append(d.text)
            result.append(d)
        return result

    @staticmethod
    def _rank(decisions: list[Decision], shot_copies: list[str], product: ProductBrief) -> list[Decision]:
        live = [d for d in decisions if d.text is not None]
        scores = consensus([d.text or "" for d in live], shot_copies, product)
        ranked = sorted((Decision(d.draft, d.text, d.action, d.reasons, round(s, 4))
                         for d, s in zip(live, scores, strict=True)), key=lambda d: -d.rank_score)
        return ranked + [d for d in decisions if d.text is None]
