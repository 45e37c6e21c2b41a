"""Chat prompts from a product, an audience and a copy spec, with retrieved (product → copy) examples as shots.

The product and audience are written as labelled lines (the *brief*); :func:`parse_brief` reads them back, which
is how the template writer works from the same messages as a real model. Only readable audience facts (segment
description, interests) ever enter a prompt — never user ids or personal data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from adpilot.create.base import Message
from adpilot.errors import UserError

DESCRIPTION_CHARS = 300
SLOT_LIMITS: dict[str, int] = {"banner": 30, "title": 40, "feed": 160, "detail": 300}
"""Maximum copy length in characters (zh) per slot; English counts characters too, so its limits are ×3."""
LANGUAGES = ("zh", "en")

LABELS: dict[str, tuple[str, str]] = {
    "title": ("商品", "Product"), "brand": ("品牌", "Brand"), "category": ("类目", "Category"),
    "price_band": ("价格带", "Price band"), "attributes": ("属性", "Attributes"),
    "description": ("卖点", "Highlights"), "audience": ("目标人群", "Audience"),
    "interests": ("人群兴趣", "Interests"), "tone": ("语气", "Tone"),
}


@dataclass(frozen=True)
class ProductBrief:
    """What the copy may talk about. ``attributes`` keeps order and repeated keys (``风格#复古*风格#文艺``)."""

    attributes: tuple[tuple[str, str], ...] = ()
    title: str = ""
    brand: str = ""
    category: tuple[str, ...] = ()
    price: float | None = None
    description: str = ""

    @classmethod
    def from_advertisegen(cls, content: str) -> ProductBrief:
        """Parse ``类型#上衣*材质#牛仔布``; the ``类型`` value doubles as title.

        >>> ProductBrief.from_advertisegen("类型#裙*颜色#白色").attributes
        (('类型', '裙'), ('颜色', '白色'))
        """
        pairs = tuple((k.strip(), v.strip()) for k, _, v in (p.partition("#") for p in content.split("*"))
                      if k.strip() and v.strip())
        title = next((v for k, v in pairs if k == "类型"), "")
        return cls(attributes=pairs, title=title)

    @classmethod
    def from_record(cls, title: str, attributes: Mapping[str, str] | None, price: float | None = None,
                    brand: str | None = None, category: Sequence[str] | None = None,
                    description: str | None = None) -> ProductBrief:
        """From a ``products`` row; the description is cut to keep prompts inside the context window."""
        return cls(attributes=tuple((str(k), str(v)) for k, v in (attributes or {}).items() if str(v).strip()),
                   title=title or "", brand=brand or "", category=tuple(category or ()), price=price,
                   description=(description or "")[:DESCRIPTION_CHARS])

    @property
    def attribute_text(self) -> str:
        """Attributes in the AdvertiseGen ``k#v*k#v`` form the shots use too."""
        return "*".join(f"{k}#{v}" for k, v in self.attributes)

    @property
    def values(self) -> list[str]:
        """Distinct attribute values, in order."""
        return list(dict.fromkeys(v for _, v in self.attributes))

    @property
    def text(self) -> str:
        """All product words in one string (for similarity and relevance)."""
        return " ".join(filter(None, [self.brand, self.title, *self.category, *self.values, self.description]))


@dataclass(frozen=True)
class Audience:
    """A segment as the copy writer may see it: a description and readable interests."""

    description: str = ""
    interests: tuple[str, ...] = ()
    key: str = "all"


@dataclass(frozen=True)
class CopySpec:
    """Tone, language and slot of the copy; ``max_chars`` derives from the slot."""

    language: str = "zh"
    slot: str = "feed"
    tone: str = ""

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise UserError(f"`language` must be one of {LANGUAGES}, got {self.language!r}")
        if self.slot not in SLOT_LIMITS:
            raise UserError(f"`slot` must be one of {sorted(SLOT_LIMITS)}, got {self.slot!r}")

    @property
    def max_chars(self) -> int:
        return SLOT_LIMITS[self.slot] * (3 if self.language == "en" else 1)


def price_band(price: float | None, language: str = "zh") -> str:
    """A coarse band instead of the exact price (the copy should not quote prices that may change).

    >>> price_band(59), price_band(1999, "en")
    ('平价', 'premium')
    """
    if price is None or price <= 0:
        return ""
    bands = ((100, "平价", "budget"), (500, "中端", "mid-range"), (float("inf"), "高端", "premium"))
    return next(zh if language == "zh" else en for limit, zh, en in bands if price < limit)


def format_brief(product: ProductBrief, audience: Audience | None, spec: CopySpec) -> str:
    """The labelled lines describing one product (and audience) in the prompt."""
    i = 0 if spec.language == "zh" else 1
    sep = "：" if spec.language == "zh" else ": "
    fields = {
        "title": product.title, "brand": product.brand, "category": " > ".join(product.category),
        "price_band": price_band(product.price, spec.language), "attributes": product.attribute_text,
        "description": " ".join(product.description.split()),
    }
    if audience is not None:
        fields["audience"] = audience.description
        fields["interests"] = "、".join(audience.interests) if spec.language == "zh" else ", ".join(audience.interests)
    fields["tone"] = spec.tone
    return "\n".join(f"{LABELS[key][i]}{sep}{value}" for key, value in fields.items() if value)


def parse_brief(text: str) -> dict[str, str]:
    """Inverse of :func:`format_brief`: label lines back to field names.

    >>> parse_brief("商品：T恤\\n属性：颜色#白色")
    {'title': 'T恤', 'attributes': '颜色#白色'}
    """
    by_label = {label: key for key, labels in LABELS.items() for label in labels}
    fields = {}
    for line in text.splitlines():
        for sep in ("：", ": "):
            label, found, value = line.partition(sep)
            if found and label in by_label:
                fields[by_label[label]] = value.strip()
                break
    return fields


def system_prompt(spec: CopySpec, target_chars: int) -> str:
    """Instructions: style, length, and the advertising-law limits the compliance check will enforce. The length
    range leans long (0.9–1.2 × target): small models undershoot, and a short copy loses more (BLEU's brevity
    penalty, fewer selling points) than a slightly long one."""
    low = max(10, target_chars * 9 // 10)
    high = max(low, min(spec.max_chars, target_chars * 6 // 5))
    if spec.language == "zh":
        return (f"你是资深电商广告文案写手。根据商品信息写一段{low}到{high}字的中文广告文案（只写一段，不分段），"
                "围绕属性写出卖点和穿着/使用场景，语言流畅自然。遵守广告法：不用“最”“第一”“顶级”“唯一”“100%”"
                "等绝对化用语，不做功效或收益承诺。只输出文案本身，不要标题、列表或解释。")
    return (f"You are a senior e-commerce copywriter. Write one English ad copy of about {target_chars // 6} words "
            "from the product facts, selling its attributes in fluent, natural language. Never use absolute "
            "claims (best, number one, #1, guaranteed, 100%) or health/financial promises. Output only the copy.")


def build_messages(product: ProductBrief, audience: Audience | None, spec: CopySpec,
                   shots: Sequence[tuple[ProductBrief, str]] = (), repair_reason: str = "",
                   target_chars: int | None = None, missing_values: Sequence[str] = ()) -> list[Message]:
    """System prompt, then each shot as a (brief → copy) exchange, then the product; a repair adds the reason,
    a coverage repair the attribute values the last draft left out."""
    target = min(target_chars or spec.max_chars, spec.max_chars)
    messages: list[Message] = [{"role": "system", "content": system_prompt(spec, target)}]
    for shot_product, copy in shots:
        messages.append({"role": "user", "content": format_brief(shot_product, None, spec)})
        messages.append({"role": "assistant", "content": copy})
    request = format_brief(product, audience, spec)
    if repair_reason:
        request += ("\n注意：上一稿不合规（" if spec.language == "zh" else "\nNote: the last draft was rejected (") \
            + repair_reason + ("），请改写并避免这些问题。" if spec.language == "zh" else "); avoid these problems.")
    if missing_values:
        request += ("\n注意：上一稿没有写到这些属性：" + "、".join(missing_values) + "。请把它们自然地写进文案。"
                    if spec.language == "zh" else "\nNote: the last draft left out these attributes: "
                    + ", ".join(missing_values) + ". Work them into the copy naturally.")
    messages.append({"role": "user", "content": request})
    return messages
