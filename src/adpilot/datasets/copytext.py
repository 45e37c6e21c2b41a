"""Ad-copy references: AdvertiseGen (attributes → copy) and KOBE / TaoDescribe (title → description).

AdvertiseGen ``content`` is ``key#value*key#value...`` (keys may repeat: ``风格#复古*风格#文艺``); KOBE lines are
character-tokenised with an aspect tag ``<0>``..``<12>`` and a user-category tag ``<a>``..``<c>`` before the title.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from adpilot.datasets._common import PathLike, member, source_path
from adpilot.errors import InputFileError
from adpilot.jsonl import read_json_lines


def parse_attributes(content: str) -> list[tuple[str, str]]:
    """``"类型#上衣*颜色#白色"`` → ``[("类型", "上衣"), ("颜色", "白色")]`` (order and repeats kept).

    >>> parse_attributes("类型#裙*风格#复古*风格#文艺")
    [('类型', '裙'), ('风格', '复古'), ('风格', '文艺')]
    """
    pairs = []
    for part in content.split("*"):
        key, sep, value = part.partition("#")
        if sep and key and value:
            pairs.append((key, value))
    return pairs


def attribute_dict(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Pairs as a product ``attributes`` map; repeated keys join their values with ``、``.

    >>> attribute_dict([("风格", "复古"), ("风格", "文艺"), ("颜色", "白色")])
    {'风格': '复古、文艺', '颜色': '白色'}
    """
    merged: dict[str, list[str]] = {}
    for key, value in pairs:
        merged.setdefault(key, []).append(value)
    return {key: "、".join(values) for key, values in merged.items()}


@dataclass(frozen=True)
class CopyExample:
    """One reference: the structured input (``pairs``/``attributes``, or a KOBE ``title``) and the written ``text``."""

    text: str
    pairs: list[tuple[str, str]] = field(default_factory=list)
    title: str | None = None
    aspect: str | None = None
    user_tag: str | None = None

    @property
    def attributes(self) -> dict[str, str]:
        return attribute_dict(self.pairs)


def load_advertisegen(path: PathLike | None = None) -> list[CopyExample]:
    """AdvertiseGen JSON lines (default ``<shared>/advertisegen/copy.jsonl``): ``text`` is the ``summary``."""
    source = source_path(path, "advertisegen")
    file = member(source, "copy.jsonl") if source.is_dir() else source
    return read_json_lines(file, lambda row: CopyExample(text=row["summary"], pairs=parse_attributes(row["content"])),
                           'an AdvertiseGen record ({"content": ..., "summary": ...})')


def _lines(file: PathLike) -> list[str]:
    with gzip.open(file, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def load_kobe(path: PathLike | None = None, split: str = "test") -> list[CopyExample]:
    """KOBE pairs from ``<split>.src.str.gz`` / ``<split>.tgt.str.gz`` (default folder ``<shared>/kobe_taodescribe``).

    Character tokens are joined back into text; ``aspect`` is the ``<k>`` tag and ``user_tag`` the ``<a|b|c>`` tag.
    """
    folder = source_path(path, "kobe_taodescribe")
    sources = _lines(member(folder, f"{split}.src.str.gz"))
    targets = _lines(member(folder, f"{split}.tgt.str.gz"))
    if len(sources) != len(targets):
        raise InputFileError(f"{folder}: {split} source and target have {len(sources)} and {len(targets)} lines")
    examples = []
    for src, tgt in zip(sources, targets, strict=True):
        tokens = src.split()
        tags = [t for t in tokens[:2] if t.startswith("<") and t.endswith(">")]
        aspect = next((t[1:-1] for t in tags if t[1:-1].isdigit()), None)
        user = next((t[1:-1] for t in tags if not t[1:-1].isdigit()), None)
        examples.append(CopyExample(text="".join(tgt.split()), title="".join(tokens[len(tags):]), aspect=aspect,
                                    user_tag=user))
    return examples
