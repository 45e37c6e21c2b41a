"""A deterministic copy writer for when no model is available. It reads the brief back out of the prompt, so it
satisfies the same :class:`~adpilot.create.base.LLM` contract; its creatives are recorded with
``source="template"`` and ``model="template"`` so nobody mistakes them for model output."""

from __future__ import annotations

from collections.abc import Sequence

from adpilot.create.base import Message, check_generate_args
from adpilot.create.prompts import parse_brief

OPENERS_ZH = ("这款{title}", "{title}上新", "一件耐看的{title}")
OPENERS_EN = ("Meet the {title}", "New in: the {title}", "A {title} worth a look")


class TemplateLLM:
    """Writes copy from the product's attributes with fixed phrase patterns; variant ``i`` rotates the opener."""

    name = "template"
    source = "template"
    steers = False

    def generate(self, messages: Sequence[Message], n: int = 1, max_tokens: int = 160,
                 temperature: float = 0.0, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
        """``n`` variants; same messages and seed → same text. ``prefer`` is ignored: every attribute value is
        written anyway."""
        check_generate_args(messages, n, max_tokens, temperature)
        last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        fields = parse_brief(last_user)
        english = any(m["role"] == "system" and m["content"].startswith("You") for m in messages)
        return [_write(fields, seed + i, english) for i in range(n)]


def _write(fields: dict[str, str], variant: int, english: bool) -> str:
    """One copy: opener, attribute phrases, audience line."""
    pairs = [p.partition("#") for p in fields.get("attributes", "").split("*") if "#" in p]
    values = list(dict.fromkeys(v for _, _, v in pairs if v))
    title = fields.get("title") or (values[0] if values else ("item" if english else "好物"))
    brand = fields.get("brand", "")
    openers = OPENERS_EN if english else OPENERS_ZH
    opener = openers[variant % len(openers)].format(title=f"{brand} {title}".strip() if english else brand + title)
    details = [v for v in values if v != title]
    if english:
        text = opener + (", featuring " + ", ".join(details) if details else "") + "."
        if fields.get("audience"):
            text += f" Made for {fields['audience']}."
        return text
    text = opener + ("，" + "、".join(details) + "，细节用心" if details else "，品质用心") + "。"
    if fields.get("audience"):
        text += f"适合{fields['audience']}。"
    return text
