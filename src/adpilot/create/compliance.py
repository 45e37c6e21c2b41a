"""Advertising-law and quality checks every draft passes before it may reach the store, and rule-based repair.

Choices, documented because they are judgement calls:

* **最 is banned everywhere** except in four time adverbs that make no claim (最近, 最后, 最初, 最终). Chinese
  regulators read 最 + adjective as an absolute claim (Advertising Law art. 9(3)) and judge borderline words by
  context; a 0.5B model's context is not worth that risk, so 最爱, 最IN and the like are rejected or rewritten.
* **Medical claims** (治疗, 治愈, 药效, 防癌…) are banned for every category except medicine/medical devices,
  because food, cosmetics and ordinary goods may not claim them (art. 17, 28). Financial promises (保本, 稳赚…)
  are checked for every category too — they only ever appear in finance copy, where they are illegal (art. 25).
* Full-width letters, digits, ＃, ％ and ． are mapped to ASCII first, so ``１００％`` or ``ＮＯ．１`` cannot slip
  through.
* **Loops** (small models without a repetition penalty) are rejected, tuned so that human copy passes: of the 535
  AdvertiseGen references only two are flagged (``设计设计``, a typo, and ``<UNK>的`` ×7), while a stutter such as
  ``雪纺刺绣刺绣…`` or ``soft soft`` is caught. In prose slots (feed, detail) a fragment or an unpunctuated keyword
  dump fails too; banners and titles may be keyword strings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from adpilot.create.metrics import words
from adpilot.errors import check_scalar

ALLOWED_ZUI = ("最近", "最后", "最初", "最终")
ABSOLUTE_ZH = ("第一", "唯一", "首个", "首选", "顶级", "国家级", "独一无二", "绝对", "万能", "全网", "销量冠军")
L, R = r"(?<![a-z])", r"(?![a-z])"  # ASCII word edges: \b fails between a Chinese character and a letter
ABSOLUTE_LATIN = re.compile(rf"100\s*%|{L}no\s*\.?\s*1(?!\d)|{L}top\s*1(?!\d)|{L}best|{L}number\s*one{R}|#\s*1(?!\d)"
                            rf"|{L}guarantee", re.IGNORECASE)
MEDICAL_ZH = ("治疗", "治愈", "疗效", "药效", "防癌", "抗癌", "根治", "包治", "降血压", "降血糖", "降血脂",
              "消炎", "处方", "无副作用", "医用级")
MEDICAL_EN = re.compile(rf"{L}(cures?|cured|heals?|anti-?cancer|clinically proven){R}", re.IGNORECASE)
FINANCE_ZH = ("保本", "稳赚", "包赚", "无风险", "零风险", "保收益", "稳赚不赔", "高收益", "保证收益")
FINANCE_EN = re.compile(rf"{L}(risk-free|no risk|sure profit){R}", re.IGNORECASE)
MEDICAL_CATEGORIES = ("药", "医疗", "medicine", "pharma", "medical")
BRIEF_ECHO = r"^\s*(商品|属性|目标人群|注意|Product|Attributes|Note)\s*[:：]"
ARTEFACTS = re.compile(r"```|\*\*|<UNK>|(?<![A-Za-z])BRAND(?![A-Za-z])|上一稿|不合规|^#+\s|" + BRIEF_ECHO, re.MULTILINE)
SENTENCE_END = re.compile(r"(?<=[。！？!?；;.])")
PUNCTUATION = re.compile(r"[，。！？、；：…,.!?;:~～]")
MIN_CHARS = 8
HAN = "\u4e00-\u9fff"  # the CJK unified ideographs, for character classes
MIN_SHARE = 16  # prose shorter than max_chars / MIN_SHARE is a fragment
PARAGRAPH_CHARS = 100  # a slot this long (zh characters; ×3 for English) asks for prose: feed and detail


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` is the family (absolute, medical, finance, brand, length, repetition,
    unfinished, language, artefact, empty), ``term`` the offending text or measurement."""

    rule: str
    term: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.term}"


@dataclass(frozen=True)
class Policy:
    """What a copy must respect: slot length, language, competitors' brands, and whether medical words are
    allowed (only for medicine categories)."""

    max_chars: int = 160
    language: str = "zh"
    banned_brands: tuple[str, ...] = ()
    medical_allowed: bool = False
    prose: bool | None = None
    """Whether the copy must read as prose; None derives it from ``max_chars``. False for copy that may run in any
    slot (an advertiser's creative without a slot), which a banner's keyword line must pass."""

    def __post_init__(self) -> None:
        check_scalar(self.max_chars, "max_chars", ge=MIN_CHARS)

    @property
    def paragraph(self) -> bool:
        """True for slots that ask for prose (feed, detail), where a keyword dump or a fragment is a failure;
        banners and titles may be short and unpunctuated."""
        if self.prose is not None:
            return self.prose
        return self.max_chars >= PARAGRAPH_CHARS * (3 if self.language == "en" else 1)

    @staticmethod
    def medical_category(category: Sequence[str]) -> bool:
        """True when the product's category path names medicine or medical devices."""
        return any(word in level.lower() for level in category for word in MEDICAL_CATEGORIES)


FULLWIDTH = {code: code - 0xFEE0 for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B),
                                            0xFF03, 0xFF05, 0xFF0E]}


def normalise(text: str) -> str:
    """Full-width digits, letters, ＃, ％ and ． to ASCII (so ``１００％`` is caught); Chinese punctuation stays.

    >>> normalise(" ＮＯ．１，１００％ ")
    'NO.1，100%'
    """
    return text.translate(FULLWIDTH).strip()


def _zui_hits(text: str) -> list[str]:
    return [text[i:i + 2] for i, ch in enumerate(text) if ch == "最" and text[i:i + 2] not in ALLOWED_ZUI]


def _term_hits(text: str, terms: Sequence[str], pattern: re.Pattern[str]) -> list[str]:
    return [t for t in terms if t in text] + [m.group(0) for m in pattern.finditer(text)]


def _stutter(text: str) -> str:
    """An immediate repeat of a word (jieba token or English word of ≥ 2 letters, ``刺绣刺绣``, ``soft soft``) or of
    a 3–8 character Chinese fragment (``蕾丝裙长蕾丝裙长``). One-character doubles (慢慢, 肉肉) are ordinary Chinese
    reduplication and pass; ABAB verbs (休息休息) are rejected too — rare in ad copy, and indistinguishable here."""
    tokens = [w.lower() for w in words(text)]
    for a, b in zip(tokens, tokens[1:], strict=False):
        if a == b and len(a) >= 2 and re.search(f"[a-z{HAN}]", a):
            return f"stutter {a + (' ' if a.isascii() else '') + b!r}"
    if frag := re.search(f"([{HAN}]{{3,8}})\\1", text):
        return f"stutter {frag.group(0)!r}"
    return ""


def _dense_ngram(cjk: str) -> str:
    """A 2–4 character Chinese n-gram seen ≥ 3 times that covers ≥ 25 % of the Chinese characters (human copy on
    AdvertiseGen stays under 15 %: 设计 ×5 in 84 characters); ``cjk`` holds only the Chinese characters."""
    for n in (4, 3, 2):
        grams = Counter(cjk[i:i + n] for i in range(len(cjk) - n + 1))
        if grams and (top := grams.most_common(1)[0])[1] >= 3 and top[1] * n >= 0.25 * len(cjk):
            return f"{top[0]!r} {top[1]} times in {len(cjk)} Chinese characters"
    return ""


def repetition(text: str) -> str:
    """Why the text loops, or ``""``: a char run ≥ 4, a repeated sentence, a stutter (word or fragment repeated
    at once), a dense 2–4-gram, a 6-gram seen ≥ 3 times, fewer than 70 % distinct Chinese bigrams (from 8 on) or
    4-grams (from 30 on).

    >>> repetition("好看好看好看好看好看好看好看好看好看好看")
    "stutter '好看好看'"
    >>> repetition("雪纺刺绣刺绣蕾丝裙长半身裙")
    "stutter '刺绣刺绣'"
    >>> repetition("简约的白色牛仔外套，衣身有刺绣装饰。")
    ''
    """
    if run := re.search(r"(\S)\1{3,}", text):
        return f"character run {run.group(0)!r}"
    sentences = [s.strip() for s in SENTENCE_END.split(text) if len(s.strip()) >= 4]
    if len(sentences) != len(set(sentences)):
        return "repeated sentence"
    cjk = re.sub(f"[^{HAN}]", "", text)
    if why := _stutter(text) or _dense_ngram(cjk):
        return why
    grams6 = Counter(g for g in (text[i:i + 6] for i in range(len(text) - 5)) if re.search(f"[{HAN}]", g))
    if grams6 and (top := grams6.most_common(1)[0])[1] >= 3:
        return f"6-gram repeated {top[1]} times: {top[0]}"
    tokens = re.findall(r"[a-z']+|\S", text.lower())  # English: adjacent-word trigrams (" with " recurs in prose)
    trigrams = Counter(" ".join(tri) for tri in zip(tokens, tokens[1:], tokens[2:], strict=False)
                       if all(re.fullmatch(r"[a-z']+", t) for t in tri))
    if trigrams and (top := trigrams.most_common(1)[0])[1] >= 3:
        return f"word 3-gram repeated {top[1]} times: {top[0]}"
    for n, least, sample in ((2, 8, cjk), (4, 30, text)):  # Chinese bigrams only: "th", "e " recur in any English
        grams = [sample[i:i + n] for i in range(len(sample) - n + 1)]
        if len(grams) >= least and len(set(grams)) / len(grams) < 0.7:
            return f"only {len(set(grams)) / len(grams):.0%} distinct {n}-grams"
    return ""


def _language(text: str, language: str) -> str:
    cjk = len(re.findall(f"[{HAN}]", text))
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    if language == "zh" and cjk < 0.5 * (cjk + latin):
        return f"{cjk} Chinese characters of {cjk + latin} letters"
    if language == "en" and cjk > 0.1 * (cjk + latin):
        return f"{cjk} Chinese characters in English copy"
    return ""


def _fragment(text: str, policy: Policy) -> list[Violation]:
    """In a prose slot: copy under a sixteenth of the slot, or 20+ characters (60 in English) without a single
    punctuation mark — what a looping small model emits (``雪纺刺绣刺绣蕾丝裙长半身裙…``), never human copy. The
    length floor is loose on purpose: the template fallback writes ``这款好物，品质用心。`` (10 characters) for a
    product without attributes, and that is acceptable copy."""
    if not policy.paragraph:
        return []
    found = []
    if len(text) < (least := policy.max_chars // MIN_SHARE):
        found.append(Violation("length", f"{len(text)} < {least} characters, too short for the slot"))
    if len(text) >= 20 * (3 if policy.language == "en" else 1) and not PUNCTUATION.search(text):
        found.append(Violation("unfinished", f"no punctuation in {len(text)} characters"))
    return found


def check(text: str, policy: Policy) -> list[Violation]:
    """Every violation in ``text`` (empty list = compliant).

    >>> [str(v) for v in check("全网最低价，100%纯棉！", Policy())]
    ['absolute: 最低', 'absolute: 全网', 'absolute: 100%']
    """
    text = normalise(text)
    if len(text) < MIN_CHARS:
        return [Violation("empty", f"{len(text)} characters")]
    found = [Violation("absolute", t) for t in _zui_hits(text) + _term_hits(text, ABSOLUTE_ZH, ABSOLUTE_LATIN)]
    if not policy.medical_allowed:
        found += [Violation("medical", t) for t in _term_hits(text, MEDICAL_ZH, MEDICAL_EN)]
    found += [Violation("finance", t) for t in _term_hits(text, FINANCE_ZH, FINANCE_EN)]
    found += [Violation("brand", b) for b in policy.banned_brands if b and b.lower() in text.lower()]
    if len(text) > policy.max_chars:
        found.append(Violation("length", f"{len(text)} > {policy.max_chars} characters"))
    found += _fragment(text, policy)
    if why := repetition(text):
        found.append(Violation("repetition", why))
    if why := _language(text, policy.language):
        found.append(Violation("language", why))
    found += [Violation("artefact", m.group(0).strip()) for m in ARTEFACTS.finditer(text)]
    return found


REWRITES: tuple[tuple[str, str], ...] = (
    ("独一无二", "别具一格"), ("销量冠军", "人气款"), ("国家级", "专业级"), ("第一时间", "及时"), ("首选", "优选"),
    ("顶级", "高品质"), ("万能", "百搭"), ("最佳", "出色"), ("最高", "较高"), ("最低", "较低"),
    ("第一", ""), ("唯一", ""), ("首个", ""), ("绝对", ""), ("全网", ""),
)
LATIN_REWRITES: tuple[tuple[str, str], ...] = (
    (rf"{L}best{R}", "great"), (rf"{L}best", "top-"), (rf"{L}number\s*one{R}", "standout"),
    (rf"{L}guarantee[a-z]*", ""), (r"100\s*%\s*", ""), (rf"{L}no\s*\.?\s*1(?!\d)|{L}top\s*1(?!\d)|#\s*1(?!\d)", ""),
)


def _drop_sentences(text: str, bad: Sequence[str]) -> str:
    """Remove every sentence that contains one of ``bad``."""
    return "".join(s for s in SENTENCE_END.split(text) if not any(b and b.lower() in s.lower() for b in bad))


def _dedupe_sentences(text: str) -> str:
    seen: set[str] = set()
    kept = []
    for sentence in SENTENCE_END.split(text):
        key = sentence.strip()
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(sentence)
    return "".join(kept)


def _fit(text: str, max_chars: int) -> str:
    """Cut to ``max_chars`` at the last sentence end that fits (a hard cut only when none does)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in re.finditer(r"[。！？!?.]", head)]
    return head[: ends[-1]] if ends and ends[-1] >= max_chars // 3 else head


def rewrite(text: str, policy: Policy) -> str:
    """Rule-based repair: soften absolute terms, drop sentences with claims or banned brands, strip markup,
    de-duplicate sentences, collapse runs and stutters, fit the length. The result must still pass :func:`check`.

    >>> rewrite("全网最好看的裙子，穿上显瘦。", Policy())
    '很好看的裙子，穿上显瘦。'
    """
    text = normalise(text)
    text = re.sub(r"```\w*|\*\*|<UNK>|(?<![A-Za-z])BRAND(?![A-Za-z])|^#+\s*", "", text, flags=re.MULTILINE)
    text = "".join(line for line in text.splitlines(keepends=True)
                   if not re.match(BRIEF_ECHO, line)).strip()
    for old, new in REWRITES:
        text = text.replace(old, new)
    text = re.sub("最(?!近|后|初|终)", "很", text)
    for pattern, new in LATIN_REWRITES:
        text = re.sub(pattern, new, text, flags=re.IGNORECASE)
    claims = list(FINANCE_ZH) + [m.group(0) for m in FINANCE_EN.finditer(text)] + list(policy.banned_brands)
    if not policy.medical_allowed:
        claims += list(MEDICAL_ZH) + [m.group(0) for m in MEDICAL_EN.finditer(text)]
    text = _drop_sentences(text, claims)
    text = re.sub(r"(\S)\1{3,}", r"\1", _dedupe_sentences(text))
    text = re.sub(f"([{HAN}A-Za-z]{{2,8}})\\1+", r"\1", text)  # stutter: 刺绣刺绣 → 刺绣
    text = re.sub(rf"{L}([a-z]{{2,}})(?:\s+\1{R})+", r"\1", text, flags=re.IGNORECASE)  # soft soft → soft
    return _fit(re.sub(r"[ \t]{2,}", " ", text).strip(), policy.max_chars)
