"""Test doubles of the create room, in a uniquely named module (``conftest`` is ambiguous across rooms)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from adpilot.create.model import default_model_path
from adpilot.create.prompts import CopySpec, ProductBrief
from adpilot.create.retrieval import CopyExample
from adpilot.create.writer import CopyWriter, Decision
from adpilot.errors import UserError


def local_model_available() -> bool:
    """llama-cpp-python and the default model's wheels are installed (the real-model tests skip otherwise)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        return default_model_path() is not None
    except UserError:
        return False


class ScriptedLLM:
    """Returns given texts in order (cycling); stands for a model that misbehaves on purpose. ``fail_on`` makes
    the k-th call raise, to simulate a crash mid-batch."""

    source = "llm"
    steers = False

    def __init__(self, texts: Sequence[str], name: str = "scripted", fail_on: int | None = None) -> None:
        self.texts = list(texts)
        self.name = name
        self.fail_on = fail_on
        self.calls = 0

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0, prefer=()):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash")
        return [self.texts[(seed + i) % len(self.texts)] for i in range(n)]


def write_with_and_without(drafts: Sequence[str], product: ProductBrief, neighbours: Sequence[CopyExample],
                           **option: Any) -> tuple[list[Decision], list[Decision]]:
    """The same two-draft write (``detail`` slot, the first neighbour as the shot) without and with one writer
    ``option``; asserts that the option cost no model call of its own."""
    plain, other = ScriptedLLM(drafts), ScriptedLLM(drafts)
    spec, shots = CopySpec(slot="detail"), list(neighbours[:1])
    without = CopyWriter(plain, n=2).write(product, None, spec, shots, neighbours=list(neighbours))
    with_it = CopyWriter(other, n=2, **option).write(product, None, spec, shots, neighbours=list(neighbours))
    assert plain.calls == other.calls == 1
    return without, with_it
