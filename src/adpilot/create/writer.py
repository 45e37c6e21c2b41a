"""From a brief to reviewed variants: generate ``n`` drafts (sampled from one prompt, with ``greedy_first`` the
first greedy; with ``shot_windows`` each the greedy completion of a prompt with its own shots), with ``extractive``
add a copy assembled from the retrieved neighbours' sentences, check each (compliance, which also rejects
repetition loops), repair the failures (regenerate with the reason in the prompt, then rewrite by rule), reject
what cannot be repaired, drop near-duplicates, rank the survivors by a reference-free consensus score, and with
``fusion`` put first a copy fused from the drafts' most consensual sentences (reviewed too); with ``hybrid`` a
second fused copy may borrow the retrieved neighbours' human sentences, and with a ``selector``
(:mod:`adpilot.create.selector`) learned weights rank all the candidates instead. Every candidate leaves a
:class:`Decision` with its reason."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from adpilot.create.base import LLM
from adpilot.create.compliance import Policy, check, normalise, rewrite
from adpilot.create.metrics import bleu4, ngram_cosine, word_precision
from adpilot.create.prompts import Audience, CopySpec, ProductBrief, build_messages
from adpilot.create.retrieval import CopyExample, assemble_copy, greedy_sentences, sentences
from adpilot.create.scoring import coverage, missing_values
from adpilot.create.selector import Selector, candidate_features
from adpilot.errors import check_scalar

ACTIONS = ("accepted", "regenerated", "rewritten", "rejected", "duplicate")
ORIGINS = ("llm", "retrieval", "fusion")
"""Who wrote a candidate: the model, retrieved human copy (:func:`assemble_copy`, or the hybrid :func:`fuse` whose
copy holds human sentences), or :func:`fuse` from the model's own accepted drafts."""
FUSION_MIN_CHARS = 6
"""Shorter sentences (``简约百搭。``) say nothing on their own and are not fused."""
FUSION_DUPLICATE = 0.4
"""Character-bigram cosine at which a sentence repeats one already fused (0.3–0.6 tried on the AdvertiseGen tuning
pairs, positions 46–99: 0.35–0.4 scored best; 0.5 before session 23)."""
FUSION_DRAFT_WEIGHT = 0.75
"""Weight of the other drafts in a fused sentence's agreement, the neighbours' copies having the rest (0–1 tried
on the tuning pairs with three shot-window drafts: 0.5–1.0 scored alike, ROUGE-L +0.6 over 0)."""
FUSION_WORD_WEIGHT = 0.2
"""Weight of a sentence's jieba-word precision (0–100) against each copy, added to its char BLEU in agreement:
char BLEU (with its brevity penalty, large for one sentence against a whole copy) favours long sentences in the
copies' exact phrasing, word precision the copies' vocabulary, which ROUGE counts. 0.05–0.4 tried on the tuning
pairs in session 24: ROUGE-1 +0.2 to +0.4, ROUGE-L +0.1 to +0.5, BLEU-4 flat (±0.05)."""
FUSION_LENGTH = 0.9
"""Fused length as a share of the writer's length target: the last pick overshoots, so 0.9 lands near 1.0× (0.8,
0.9, 1.0, 1.1, 1.3 tried on AdvertiseGen pairs at positions 100–110 of the evaluation order, never on the reported
prefix: 0.9 and 1.0 scored best; coverage weights 0–40 mattered less)."""
REPAIR_SEED_OFFSET = 10_000
COVER_SEED_OFFSET = 20_000
"""Seed (and ``Decision.order``) offset of draft i's coverage repair."""
STEERED_ORDER_OFFSET = 30_000
"""``Decision.order`` offset of draft i's steered coverage repair (same prompt and seed as the plain one)."""


def tidy(text: str) -> str:
    """Keep the first paragraph and drop a trailing unfinished sentence (the token limit cut it off): small
    models append notes or a second, looping paragraph after the copy.

    >>> tidy("白色外套，简约百搭。衣身刺绣很有看点。\\n\\n以上文案突出了")
    '白色外套，简约百搭。衣身刺绣很有看点。'
    >>> tidy("白色外套，简约百搭。衣身刺绣很有")
    '白色外套，简约百搭。'
    """
    text = text.strip().split("\n\n")[0].strip()
    ends = [m.end() for m in re.finditer(r"[。！？!?.…]", text)]
    if ends and ends[-1] < len(text) and ends[-1] >= len(text) // 3:
        text = text[: ends[-1]]
    return text


def _exactly(texts: Sequence[str] | None, n: int) -> list[str]:
    """``n`` strings from whatever a backend returned: missing answers become empty drafts (rejected later)."""
    texts = [t if isinstance(t, str) else "" for t in (texts or [])][:n]
    return texts + [""] * (n - len(texts))


@dataclass(frozen=True)
class Decision:
    """What happened to one draft: ``text`` is the compliant copy (``None`` when rejected or duplicate);
    ``order`` is the draft's sampling index (seed offset; ``n`` for the extractive candidate, ``n + 1`` for the
    fused one, ``n + 2`` for the hybrid, :data:`COVER_SEED_OFFSET` + i and :data:`STEERED_ORDER_OFFSET` + i for
    draft i's coverage repairs), ``rank_score`` its consensus or selector score, ``action`` one of :data:`ACTIONS`,
    ``origin`` one of :data:`ORIGINS`."""

    draft: str
    text: str | None
    action: str
    reasons: tuple[str, ...] = ()
    rank_score: float = 0.0
    order: int = 0
    origin: str = "llm"


def consensus(candidates: Sequence[str], pseudo_references: Sequence[str], product: ProductBrief,
              coverage_weight: float = 20.0) -> list[float]:
    """Reference-free selection score (minimum-Bayes-risk style): mean char BLEU to the other candidates and to
    the retrieved neighbours' copies (pseudo-references), plus attribute coverage. Never looks at the reference."""
    scores = []
    for i, text in enumerate(candidates):
        peers = [c for j, c in enumerate(candidates) if j != i] + list(pseudo_references)
        agreement = statistics.fmean(bleu4(text, p) for p in peers) if peers else 0.0
        scores.append(agreement + coverage_weight * coverage(text, product))
    return scores


def fuse(drafts: Sequence[str], pseudo_references: Sequence[str], product: ProductBrief, target_chars: int,
         coverage_weight: float = 20.0, human: Sequence[str] = (), draft_weight: float = FUSION_DRAFT_WEIGHT,
         word_weight: float = FUSION_WORD_WEIGHT) -> str:
    """Sentence-level consensus: from the sentences of the model's accepted drafts, pick greedily the one with
    the highest agreement plus ``coverage_weight`` × the share of attribute values it adds, skipping near-repeats
    and a second opening sentence, until ``target_chars``; the picks keep their drafts' order (an opening first,
    then by relative position in its draft). Agreement is the mean utility to the *other* drafts (weight
    ``draft_weight``: a sentence the other drafts also say is likely to be said by the reference — minimum Bayes
    risk) and to the pseudo-references, the retrieved neighbours' copies (the rest); either alone when the other
    is empty. The utility mirrors the metrics: char BLEU plus ``word_weight`` × jieba-word precision.

    Why: whole-draft selection is capped (the best of 3 drafts chosen *by the reference* scored BLEU-4 6.4 on 30
    AdvertiseGen pairs): each draft has a few sentences in the stock phrasing of human copy and a few that drift;
    keeping only the former beats choosing any one draft. Never looks at the reference.

    ``human`` copies (the retrieved neighbours' own, also among ``pseudo_references``) offer their sentences too:
    each is scored against the *other* pseudo-references (against its own copy it would agree perfectly), so a
    stock human sentence wins only where it agrees with the other neighbours more than any draft sentence does.

    >>> fuse(["复古雪纺裙，清新。白色裙身很干净。", "复古风格的雪纺裙，优雅大方。胡乱写的一句话。"],
    ...      ["复古风格，优雅大方。白色裙身干净。"], ProductBrief.from_advertisegen("类型#裙*风格#复古*颜色#白色"), 20)
    '复古风格的雪纺裙，优雅大方。白色裙身很干净。'
    """
    position: dict[str, float] = {}
    source: dict[str, str] = {}
    for text in [*drafts, *human]:
        parts = sentences(text)
        for i, sentence in enumerate(parts):
            if len(sentence.strip()) >= FUSION_MIN_CHARS and sentence not in position:
                position[sentence], source[sentence] = i / len(parts), text
    agreement = {sentence: _agreement(sentence, [p for p in pseudo_references if p != own],
                                      [d for d in drafts if d != own], draft_weight, word_weight)
                 for sentence, own in source.items()}
    texts = list(position)
    n_values = max(sum(k != "类型" for k, _ in product.attributes), 1)

    def score(i: int, new: int, chosen: list[str]) -> float | None:
        sentence = texts[i]
        if sentence in chosen or (position[sentence] == 0 and any(position[c] == 0 for c in chosen)) or \
                any(ngram_cosine(sentence, c) >= FUSION_DUPLICATE for c in chosen):
            return None
        return agreement[sentence] + coverage_weight * new / n_values

    chosen = greedy_sentences(texts, product, target_chars, score)
    return "".join(sorted(chosen, key=position.__getitem__))


def _agreement(sentence: str, pseudo_references: Sequence[str], drafts: Sequence[str], draft_weight: float,
               word_weight: float) -> float:
    """Mean agreement of ``sentence`` with ``drafts`` and with ``pseudo_references``, mixed by ``draft_weight``;
    agreement with one copy is char BLEU plus ``word_weight`` × word precision."""
    near, peers = ([bleu4(sentence, t) + word_weight * word_precision(sentence, t) for t in texts]
                   for texts in (pseudo_references, drafts))
    if not near or not peers:
        return statistics.fmean(near or peers) if near or peers else 0.0
    return (1 - draft_weight) * statistics.fmean(near) + draft_weight * statistics.fmean(peers)


class CopyWriter:
    """Configuration of one writing pass; :meth:`write` does the work. ``target_chars`` is the length the prompt
    asks for; without it, the median length of the shots' copies (a noisy guess: on AdvertiseGen the
    neighbours' length does not predict the reference's, r = 0.09, so evaluation passes the pool's median)."""

    def __init__(self, llm: LLM, n: int = 4, max_tokens: int = 160, temperature: float = 0.8, repair: bool = True,
                 dedupe_threshold: float = 0.9, banned_brands: Sequence[str] = (), encoder: Any | None = None,
                 greedy_first: bool = False, target_chars: int | None = None, extractive: bool = False,
                 fusion: bool = False, hybrid: bool = False, selector: Selector | None = None,
                 shot_windows: bool = False, cover: bool = False) -> None:
        self.llm = llm
        self.cover = cover
        self.shot_windows = shot_windows
        self.fusion = fusion
        self.hybrid = hybrid
        self.selector = selector
        self.extractive = extractive
        self.greedy_first = greedy_first
        self.target_chars = None if target_chars is None else int(check_scalar(target_chars, "target_chars", ge=10))
        self.n = int(check_scalar(n, "n", ge=1, le=32))
        self.max_tokens = int(check_scalar(max_tokens, "max_tokens", ge=8))
        self.temperature = check_scalar(temperature, "temperature", ge=0, le=2)
        self.repair = repair
        self.dedupe_threshold = check_scalar(dedupe_threshold, "dedupe_threshold", gt=0, le=1)
        self.banned_brands = tuple(banned_brands)
        self.encoder = encoder

    def policy(self, product: ProductBrief, spec: CopySpec) -> Policy:
        return Policy(max_chars=spec.max_chars, language=spec.language, banned_brands=self.banned_brands,
                      medical_allowed=Policy.medical_category(product.category))

    def write(self, product: ProductBrief, audience: Audience | None, spec: CopySpec,
              shots: Sequence[CopyExample] = (), seed: int = 0,
              neighbours: Sequence[CopyExample] | None = None) -> list[Decision]:
        """Decisions for ``n`` drafts (and the extractive candidate), accepted ones first and best-ranked first.
        ``neighbours`` (default: ``shots``), the retrieved examples, build the extractive candidate and are the
        selection's pseudo-references."""
        policy = self.policy(product, spec)
        near = shots if neighbours is None else neighbours
        pairs = [(s.product, s.copy) for s in shots]
        target = self.target_chars or (int(statistics.median(len(s.copy) for s in shots)) if shots
                                       else spec.max_chars * 3 // 4)
        windows = self._windows(shots, near)

        def messages(shot_pairs: list[tuple[ProductBrief, str]], reasons: Sequence[str] = (),
                     missing: Sequence[str] = ()) -> list:
            return build_messages(product, audience, spec, shot_pairs, target_chars=target,
                                  repair_reason="；".join(sorted(set(reasons)))[:300], missing_values=missing)

        if windows is None:
            drafts = self._drafts(messages(pairs), seed)
        else:
            drafts = self._window_drafts([messages(w) for w in windows], seed)
        decisions = [self._review(d, policy, i) for i, d in enumerate(drafts)]
        failing = [i for i, d in enumerate(decisions) if d.action != "accepted"]
        if self.cover:
            decisions += self._covered(drafts, product, policy, seed, lambda i, missing: messages(
                pairs if windows is None else windows[i], missing=missing), greedy=windows is not None)
        if self.extractive and (extract := assemble_copy(product, near, target)):
            decisions.append(self._review_extract(extract, policy))
        if failing and self.repair:
            if windows is None:
                retry = _exactly(self.llm.generate(
                    messages(pairs, [r for i in failing for r in decisions[i].reasons]), n=len(failing),
                    max_tokens=self.max_tokens, temperature=self.temperature, seed=seed + REPAIR_SEED_OFFSET),
                    len(failing))
            else:
                retry = [self._one(messages(windows[i], decisions[i].reasons), seed + REPAIR_SEED_OFFSET + i)
                         for i in failing]
            for i, new in zip(failing, retry, strict=True):
                decisions[i] = self._repair(decisions[i], new, policy)
        decisions = self._dedupe(decisions)
        decisions += self._fused(decisions, near, product, target, policy)
        return self._rank(decisions, [s.copy for s in near], product, target)

    def _covered(self, drafts: Sequence[str], product: ProductBrief, policy: Policy, seed: int,
                 prompt: Callable[[int, list[str]], list], greedy: bool) -> list[Decision]:
        """With ``cover``, for each draft that leaves out attribute values (other than the title), more completions
        of its prompt with a note naming them — greedy for shot-window drafts, sampled otherwise: a plain one and,
        when the model ``steers``, one steered towards the values (``LLM.generate(prefer=…)``) — kept *beside* the
        draft for fusion and selection. One that breaks a rule is rejected, not repaired: the draft it would add to
        is there already.

        Why: the model writes around style and pattern values (文艺, 淑女, 卡通, 开衫: 102 of the 740 values of the
        untrained AdvertiseGen pairs were missing from the fused copy), while the advertiser listed them to be
        sold, and the human references name 78% of those values verbatim. Asked by the note alone, the 0.5B model
        writes ~1 in 5 of the values named, steered ~2 in 3 (155 of 229 on the tuning pairs). Both drafts give
        fusion sentences to choose from; over the 100 untrained pairs the plain one gained BLEU-4 +0.24, ROUGE-1
        +0.59 [+0.03, +1.15], and the steered one beside it a further BLEU-4 +0.21, ROUGE-1 +0.52 [−0.01, +1.14]
        (in place of the plain one, with a stronger bias, it lost ROUGE-L; docs/STATUS.md, #5)."""
        result = []
        for i, draft in enumerate(drafts):
            if missing := missing_values(draft, product):
                messages, temperature = prompt(i, missing), 0.0 if greedy else self.temperature
                steered = [(STEERED_ORDER_OFFSET + i, missing)] if self.llm.steers else []
                for order, prefer in [(COVER_SEED_OFFSET + i, []), *steered]:
                    text = self._one(messages, seed + COVER_SEED_OFFSET + i, temperature, prefer)
                    result.append(self._review(text, policy, order))
        return result

    def _fused(self, decisions: list[Decision], near: Sequence[CopyExample], product: ProductBrief, target: int,
               policy: Policy) -> list[Decision]:
        """With ``fusion``, the reviewed :func:`fuse` of the accepted model drafts; none when it equals one of
        them (a single draft, say). A fused copy that is a draft's first sentences is kept: shorter, it scores
        better. With ``hybrid``, also the fusion of the drafts' and the same-type neighbours' sentences (order
        ``n + 2``), labelled ``retrieval`` because it holds human sentences; none when it holds no human one."""
        drafts = [d.text for d in decisions if d.text is not None and d.origin == "llm"]
        pseudo_references = [e.copy for e in near]
        result = []
        if self.fusion and (text := fuse(drafts, pseudo_references, product, int(target * FUSION_LENGTH))) \
                and normalise(text) not in drafts:
            result.append(replace(self._review(text, policy, self.n + 1), origin="fusion"))
        if self.hybrid and drafts:
            human = [e.copy for e in near if e.product.title == product.title] or pseudo_references
            text = fuse(drafts, pseudo_references, product, int(target * FUSION_LENGTH), human=human)
            if any(s in h for s in sentences(text) for h in human) and \
                    normalise(text) not in drafts + [d.text for d in result]:
                result.append(replace(self._review(text, policy, self.n + 2), origin="retrieval"))
        return result

    def _windows(self, shots: Sequence[CopyExample], near: Sequence[CopyExample],
                 ) -> list[list[tuple[ProductBrief, str]]] | None:
        """With ``shot_windows``, draft i's shots: the nearest example, then window i of the next neighbours,
        ``k - 1`` of them (draft 0 sees the usual shots). Each such draft, and its repair, is the greedy
        completion of its own prompt — greedy copy scores best against references, and the windows make the
        drafts differ (:meth:`_window_drafts`); ``None`` (sampled drafts from one prompt) when off or with too
        few neighbours."""
        k = len(shots)
        if not self.shot_windows or k < 2 or len(near) < 1 + self.n * (k - 1):
            return None
        rest = near[1:]
        return [[(e.product, e.copy) for e in [near[0], *rest[i * (k - 1):(i + 1) * (k - 1)]]]
                for i in range(self.n)]

    def _window_drafts(self, prompts: list[list], seed: int) -> list[str]:
        """The greedy completion of each window's prompt; one that repeats an earlier draft (similarity at least
        ``dedupe_threshold``: short copy from formulaic shots converges) is sampled from its prompt instead, so
        that the variants still differ."""
        drafts: list[str] = []
        for i, messages in enumerate(prompts):
            draft = self._one(messages, seed + i)
            if drafts and self._similarity([*drafts, draft])[-1, :-1].max() >= self.dedupe_threshold:
                draft = self._one(messages, seed + i, self.temperature)
            drafts.append(draft)
        return drafts

    def _one(self, messages: list, seed: int, temperature: float = 0.0, prefer: Sequence[str] = ()) -> str:
        """One completion (greedy by default); an empty string when the model returns nothing."""
        return _exactly(self.llm.generate(messages, n=1, max_tokens=self.max_tokens, temperature=temperature,
                                          seed=seed, prefer=prefer), 1)[0]

    def _drafts(self, messages: list, seed: int) -> list[str]:
        """``n`` drafts: with ``greedy_first``, draft 0 is the greedy (temperature 0) completion — the single most
        likely copy, which scores best against references — and the rest are sampled for selection to choose from."""
        greedy = int(self.greedy_first and self.temperature > 0)
        first = [self._one(messages, seed)] if greedy else []
        rest = self.llm.generate(messages, n=self.n - greedy, max_tokens=self.max_tokens,
                                 temperature=self.temperature, seed=seed + greedy) if self.n > greedy else []
        return _exactly(first + list(rest or []), self.n)

    @staticmethod
    def _review(draft: str, policy: Policy, order: int) -> Decision:
        found = [str(p) for p in check(tidy(draft), policy)]
        if not found:
            return Decision(draft, normalise(tidy(draft)), "accepted", order=order)
        return Decision(draft, None, "rejected", tuple(found), order=order)

    def _review_extract(self, text: str, policy: Policy) -> Decision:
        """The extractive candidate is reviewed like a draft (human copy breaks the rules too), but repaired by
        rule only: the model did not write it, so there is nothing to regenerate."""
        review = self._review(text, policy, self.n)
        if review.text is None:
            review = self._rewritten(review, (tidy(text),), policy)
        return replace(review, origin="retrieval")

    @classmethod
    def _repair(cls, failed: Decision, regenerated: str, policy: Policy) -> Decision:
        """Regenerated draft if it passes, else the rule rewrite of either draft, else rejected."""
        if not check(tidy(regenerated), policy):
            return Decision(failed.draft, normalise(tidy(regenerated)), "regenerated", failed.reasons,
                            order=failed.order)
        return cls._rewritten(failed, (tidy(failed.draft), tidy(regenerated)), policy)

    @staticmethod
    def _rewritten(failed: Decision, candidates: Sequence[str], policy: Policy) -> Decision:
        """The first of ``candidates`` that passes once rewritten by rule, else ``failed`` (rejected)."""
        for candidate in candidates:
            fixed = rewrite(candidate, policy)
            if not check(fixed, policy):
                return Decision(failed.draft, fixed, "rewritten", failed.reasons, order=failed.order)
        return failed

    def _similarity(self, texts: list[str]) -> np.ndarray:
        """Pairwise similarity: embedding cosine with an encoder (``understand.TextEncoder``), else character
        bigram cosine. Shape (n, n)."""
        if self.encoder is not None and texts:
            vectors = np.asarray(self.encoder.encode(texts, kind="passage"), dtype=np.float64)
            return vectors @ vectors.T
        return np.array([[ngram_cosine(a, b) for b in texts] for a in texts])

    def _dedupe(self, decisions: list[Decision]) -> list[Decision]:
        """Drop a text whose similarity to an earlier kept text reaches ``dedupe_threshold``."""
        texts = [d.text for d in decisions if d.text is not None]
        similarity = self._similarity(texts)
        position = {id(d): i for i, d in enumerate(d for d in decisions if d.text is not None)}
        kept: list[int] = []
        result = []
        for d in decisions:
            if d.text is not None:
                i = position[id(d)]
                twin = next((texts[j] for j in kept if similarity[i, j] >= self.dedupe_threshold), None)
                if twin is not None:
                    d = replace(d, text=None, action="duplicate", reasons=(f"near-duplicate of {twin[:20]}…",))
                else:
                    kept.append(i)
            result.append(d)
        return result

    def _rank(self, decisions: list[Decision], pseudo_references: list[str], product: ProductBrief,
              target: int) -> list[Decision]:
        """Live candidates best first: by the learned ``selector`` when there is one, else the fused copy first
        and the rest by :func:`consensus`; then the rejected and duplicate drafts."""
        live = [d for d in decisions if d.text is not None]
        texts = [d.text or "" for d in live]
        if self.selector is not None and live:
            scores = self.selector.score(candidate_features(texts, [d.origin for d in live], pseudo_references,
                                                            product, target)).tolist()
            fusion_first = False
        else:
            scores, fusion_first = consensus(texts, pseudo_references, product), True
        ranked = sorted((replace(d, rank_score=round(s, 4)) for d, s in zip(live, scores, strict=True)),
                        key=lambda d: (fusion_first and d.origin != "fusion", -d.rank_score))
        return ranked + [d for d in decisions if d.text is None]
