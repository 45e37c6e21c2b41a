"""Reference evaluation (AdvertiseGen protocol): for each reference, write a copy from its attributes alone with
few-shot examples retrieved from a pool that never contains the reference, keep the writer's top-ranked variant,
and score it against the reference with BLEU-4 and ROUGE-1/2/L; also count compliance violations."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from adpilot.create.compliance import Policy, check
from adpilot.create.metrics import bleu4, mean_interval, rouge
from adpilot.create.prompts import CopySpec
from adpilot.create.retrieval import NEIGHBOURS, CopyExample, CopyPool, assemble_copy
from adpilot.create.selector import candidate_features
from adpilot.create.writer import CopyWriter
from adpilot.errors import UserError, check_scalar

REPORTED_PAIRS = 46
"""Figures are reported on this prefix of the sampled order: nothing may be fitted or tuned on it."""
BASELINES = ("nearest", "extractive")
"""Outputs without a model: the nearest pool copy, or the copy assembled from the neighbours' sentences."""


LOOP_REASONS = ("repetition:", "unfinished:")
"""Compliance reasons that mean the model looped or stopped mid-thought rather than broke a rule."""


@dataclass
class EvalResult:
    """Per-reference scores (0–100), the chosen copies, and violation counts."""

    rows: list[dict[str, float]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    drafts: int = 0
    draft_violations: int = 0
    draft_loops: int = 0

    def summary(self, seed: int = 0) -> dict[str, tuple[float, float, float]]:
        """Mean and 95 % bootstrap interval per metric, plus the final and draft violation rates (%)."""
        names = [name for name in self.rows[0] if name != "violation"] + ["violation"] if self.rows else []
        result = {m: mean_interval([r[m] for r in self.rows], seed=seed) for m in names}
        if self.drafts:
            rate = 100.0 * self.draft_violations / self.drafts
            result["draft-violation"] = (rate, rate, rate)
            loops = 100.0 * self.draft_loops / self.drafts
            result["draft-loop"] = (loops, loops, loops)
        return result


def compliant_pool(examples: Sequence[CopyExample], spec: CopySpec) -> list[CopyExample]:
    """Only examples whose copy passes compliance may be shown to the model as shots."""
    policy = Policy(max_chars=spec.max_chars, language=spec.language)
    return [e for e in examples if not check(e.copy, policy)]


def typical_length(examples: Sequence[CopyExample]) -> int:
    """Median copy length of a pool: the length target for copy written in its style.

    >>> from adpilot.create.prompts import ProductBrief
    >>> typical_length([CopyExample(ProductBrief(), "甲" * n) for n in (80, 100, 130)])
    100
    """
    return int(np.median([len(e.copy) for e in examples])) if examples else 0


def sample_indices(n_refs: int, limit: int | None, seed: int, shard: tuple[int, int] = (0, 1),
                   offset: int = 0) -> list[int]:
    """``limit`` indices of a seeded permutation from position ``offset`` (all, in order, when ``limit`` is None);
    shard ``(i, m)`` keeps every m-th from the i-th, so m processes split one sample. Prefix-stable: a smaller
    ``limit`` evaluates a prefix of a larger one's items, so an interrupted run's cache is reused; a distinct
    ``offset`` gives pairs disjoint from the first ``offset`` (tune there, report on the prefix).

    >>> sample_indices(10, None, 0, shard=(1, 3))
    [1, 4, 7]
    >>> set(sample_indices(10, 3, 0)).isdisjoint(sample_indices(10, 3, 0, offset=3))
    True
    """
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"`shard` must be i/m with 0 <= i < m, got {index}/{count}")
    check_scalar(offset, "offset", ge=0, lt=max(n_refs, 1))
    if limit is not None:
        check_scalar(limit, "limit", ge=1)
    if (limit is None or limit >= n_refs) and not offset:
        chosen = list(range(n_refs))
    else:
        stop = n_refs if limit is None else offset + limit
        chosen = np.random.default_rng(seed).permutation(n_refs)[offset:stop].tolist()
    return chosen[index::count]


def _briefs(refs: Sequence[CopyExample], pool: Sequence[CopyExample] | None, spec: CopySpec, k: int,
            neighbours: int, limit: int | None, seed: int, shard: tuple[int, int], offset: int,
            ) -> Iterator[tuple[int, CopyExample, list[CopyExample]]]:
    """(index, reference, its ``max(k, neighbours)`` nearest compliant pool examples) for each sampled reference;
    without ``pool``, leave-one-out over ``refs`` (an example whose copy is the reference's never comes back)."""
    index = CopyPool(k=k).fit(compliant_pool(pool if pool is not None else refs, spec))
    for i in sample_indices(len(refs), limit, seed, shard, offset):
        ref = refs[i]
        yield i, ref, [index.examples_[j] for j in index.query(ref.product, k=max(k, neighbours, 1),
                                                                exclude_copy=ref.copy)]


def selector_groups(refs: Sequence[CopyExample], writer: CopyWriter, pool: Sequence[CopyExample] | None = None,
                    k: int = 3, limit: int | None = None, seed: int = 0, offset: int = REPORTED_PAIRS,
                    neighbours: int = NEIGHBOURS, spec: CopySpec | None = None,
                    on_item: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training data for :meth:`Selector.fit`: per sampled reference, the features of the writer's live
    candidates (shape (n_i, len(FEATURES))) and each one's BLEU-4 against the reference (shape (n_i,)).
    Refuses positions inside the reported prefix (``offset`` < :data:`REPORTED_PAIRS`)."""
    if offset < REPORTED_PAIRS:
        raise UserError(f"fit the selector on pairs outside the reported prefix: `offset` must be >= "
                        f"{REPORTED_PAIRS}, got {offset}")
    spec = spec or CopySpec(slot="detail")
    target = writer.target_chars or typical_length(pool if pool is not None else refs)
    groups = []
    for done, (i, ref, near) in enumerate(_briefs(refs, pool, spec, k, neighbours, limit, seed, (0, 1), offset),
                                          start=1):
        live = [d for d in writer.write(ref.product, None, spec, near[:k], seed=seed + i, neighbours=near)
                if d.text is not None]
        texts = [d.text or "" for d in live]
        features = candidate_features(texts, [d.origin for d in live], [e.copy for e in near], ref.product, target)
        groups.append((features, np.array([bleu4(t, ref.copy) for t in texts])))
        if on_item is not None:
            on_item(done)
    return groups


def evaluate(refs: Sequence[CopyExample], writer: CopyWriter | None, pool: Sequence[CopyExample] | None = None,
             k: int = 3, limit: int | None = None, seed: int = 0, spec: CopySpec | None = None,
             on_item: Callable[[int, dict], None] | None = None, shard: tuple[int, int] = (0, 1),
             neighbours: int = NEIGHBOURS, baseline: str = "nearest", offset: int = 0) -> EvalResult:
    """Score the writer on ``refs``; without ``pool``, leave-one-out over ``refs``. With ``writer=None`` the
    output is a retrieval-only ``baseline``: the nearest pool copy (``nearest``) or the copy assembled from the
    neighbours' sentences (``extractive``, :func:`assemble_copy`). The writer sees the ``k`` nearest
    examples as shots and the ``neighbours`` nearest for its extractive candidate — never the reference.
    ``on_item(done, row)`` sees each scored item as it finishes (``row`` holds the reference index, the output
    and its scores); ``offset`` starts at that position of the sampled order (see :func:`sample_indices`)."""
    if baseline not in BASELINES:
        raise UserError(f"`baseline` must be one of {BASELINES}, got {baseline!r}")
    spec = spec or CopySpec(slot="detail")
    target = typical_length(pool if pool is not None else refs)
    result = EvalResult()
    policy = Policy(max_chars=spec.max_chars, language=spec.language)
    for done, (i, ref, near) in enumerate(_briefs(refs, pool, spec, k, neighbours, limit, seed, shard, offset),
                                          start=1):
        if writer is None:
            output = (near[0].copy if near else "") if baseline == "nearest" else \
                assemble_copy(ref.product, near, target)
        else:
            decisions = writer.write(ref.product, None, spec, near[:k], seed=seed + i, neighbours=near)
            drafts = [d for d in decisions if d.origin == "llm"]
            result.drafts += len(drafts)
            result.draft_violations += sum(bool(d.reasons) and d.action != "duplicate" for d in drafts)
            result.draft_loops += sum(any(r.startswith(LOOP_REASONS) for r in d.reasons) for d in drafts)
            output = decisions[0].text or ""
            first = next((d.text or "" for d in decisions if d.order == 0), "")
        result.outputs.append(output)
        row = {"bleu-4": bleu4(output, ref.copy), **rouge(output, ref.copy),
               "violation": 100.0 * bool(output and check(output, policy))}
        if writer is not None:  # the first draft (greedy with greedy_first), i.e. no selection
            row["unselected-bleu-4"] = bleu4(first, ref.copy)
            row["unselected-rouge-l"] = rouge(first, ref.copy)["rouge-l"]
            row["chosen-retrieval"] = 100.0 * (bool(decisions) and decisions[0].origin == "retrieval")
        result.rows.append(row)
        if on_item is not None:
            on_item(done, {"index": i, "output": output, **row})
    return result
