"""A learned selector: which of one brief's reviewed candidates (model drafts, the fused copy, …) is likely to be
closest to the copy a human would write, from reference-free features of each candidate.

Why: the consensus score (:func:`adpilot.create.writer.consensus`) weighs agreement with the retrieved copies and
attribute coverage by hand, and always puts the fused copy first. Which of these signals predicts a candidate's
BLEU against its *own* (unseen) reference, and by how much, is an empirical question: :meth:`Selector.fit` answers
it by ridge regression on candidates written for pairs outside any reported sample, with features and target
centred per brief (only the order *within* a brief matters). The fitted weights ship as ``selector.json`` next to
this module, written by ``adpilot creative fit-selector`` (the file names the command and data that fitted it).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adpilot.create.metrics import bleu4
from adpilot.create.prompts import ProductBrief
from adpilot.create.scoring import coverage
from adpilot.errors import InputFileError, check_scalar

FEATURES = ("agreement", "agreement_max", "peer_agreement", "coverage", "length_ratio", "length_gap", "sentences",
            "fusion", "retrieval")
"""Per candidate: mean and max char BLEU-4 to the pseudo-references (the retrieved neighbours' copies), mean char
BLEU-4 to the brief's other candidates, attribute coverage (0–1), length / target, |log(length / target)|, number
of sentences, and whether the fused copy (``fusion``) or human sentences (``retrieval``) wrote it."""
DEFAULT_PATH = Path(__file__).with_name("selector.json")


def candidate_features(texts: Sequence[str], origins: Sequence[str], pseudo_references: Sequence[str],
                       product: ProductBrief, target_chars: int) -> np.ndarray:
    """The :data:`FEATURES` of each candidate, shape (len(texts), len(FEATURES)). Never looks at a reference.

    >>> p = ProductBrief.from_advertisegen("类型#裙*颜色#白色")
    >>> candidate_features(["白色裙子。", "一条裙子。很好看。"], ["llm", "fusion"], ["白色的裙子。"], p, 10).shape
    (2, 9)
    """
    if len(texts) != len(origins):
        raise ValueError(f"{len(texts)} candidates but {len(origins)} origins")
    target = max(int(target_chars), 1)
    rows = []
    for i, text in enumerate(texts):
        to_refs = [bleu4(text, r) for r in pseudo_references] or [0.0]
        peers = [bleu4(text, other) for j, other in enumerate(texts) if j != i] or [0.0]
        ratio = max(len(text), 1) / target
        rows.append([statistics.fmean(to_refs), max(to_refs), statistics.fmean(peers), coverage(text, product),
                     ratio, abs(math.log(ratio)), float(sum(text.count(m) for m in "。！？!?") or 1),
                     float(origins[i] == "fusion"), float(origins[i] == "retrieval")])
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(FEATURES))


@dataclass(frozen=True)
class Selector:
    """A linear score ``(x - mean) / scale · weights`` per candidate; higher = expected closer to the reference.
    ``provenance`` says how the weights were fitted (command, pairs, cross-validated gain)."""

    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    features: tuple[str, ...] = FEATURES
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if tuple(self.features) != FEATURES:
            raise ValueError(f"selector features {list(self.features)} do not match this version's {list(FEATURES)}")
        if not len(self.weights) == len(self.mean) == len(self.scale) == len(FEATURES):
            raise ValueError(f"a selector needs {len(FEATURES)} weights, means and scales")

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores of candidates with ``features`` of shape (n, len(FEATURES)); shape (n,)."""
        x = (np.asarray(features, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return x @ np.asarray(self.weights)

    @classmethod
    def fit(cls, groups: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 1.0,
            provenance: dict | None = None) -> Selector:
        """Ridge regression of each candidate's BLEU-4 against its reference on its features, both centred within
        each group (one brief's candidates); groups with fewer than two candidates carry no information.
        ``groups``: (features of shape (n_i, len(FEATURES)), targets of shape (n_i,))."""
        check_scalar(l2, "l2", ge=0)
        used = [(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)) for x, y in groups
                if len(y) >= 2]
        if not used:
            raise ValueError("fitting a selector needs at least one brief with two or more candidates")
        x_all = np.vstack([x for x, _ in used])
        mean = x_all.mean(axis=0)
        scale = x_all.std(axis=0)
        scale[scale == 0] = 1.0
        xc = np.vstack([(x - x.mean(axis=0)) / scale for x, _ in used])
        yc = np.concatenate([y - y.mean() for _, y in used])
        weights = np.linalg.solve(xc.T @ xc + l2 * len(used) * np.eye(xc.shape[1]), xc.T @ yc)
        return cls(tuple(round(float(w), 6) for w in weights), tuple(round(float(m), 6) for m in mean),
                   tuple(round(float(s), 6) for s in scale), FEATURES, dict(provenance or {}))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        payload = {"features": list(self.features), "weights": list(self.weights), "mean": list(self.mean),
                   "scale": list(self.scale), "provenance": self.provenance}
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Selector:
        """Weights written by :meth:`save`; a missing, garbled or stale file is an :class:`InputFileError`."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(payload["weights"]), tuple(payload["mean"]), tuple(payload["scale"]),
                       tuple(payload["features"]), dict(payload.get("provenance", {})))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputFileError(f"selector weights {path} cannot be used: {error}") from error


def cross_validate(groups: Sequence[tuple[np.ndarray, np.ndarray]], l2: float = 1.0) -> dict[str, float]:
    """Leave-one-brief-out: the mean target of the candidate the selector fitted on the other briefs picks, next
    to the default rule's (the fused copy when there is one, else the first candidate) and the oracle's (the best
    candidate by its own reference). The honest check of whether the weights pay."""
    picked, rule, oracle = [], [], []
    for i, (x, y) in enumerate(groups):
        selector = Selector.fit([g for j, g in enumerate(groups) if j != i], l2=l2)
        fused = np.flatnonzero(np.asarray(x)[:, FEATURES.index("fusion")] == 1)
        picked.append(y[int(np.argmax(selector.score(x)))])
        rule.append(y[int(fused[0]) if fused.size else 0])
        oracle.append(float(np.max(y)))
    return {"selected": round(float(np.mean(picked)), 3), "fused_first": round(float(np.mean(rule)), 3),
            "oracle": round(float(np.mean(oracle)), 3)}


def default_selector() -> Selector | None:
    """The shipped selector (``selector.json`` beside this module), or ``None`` when it is absent."""
    return Selector.load(DEFAULT_PATH) if DEFAULT_PATH.is_file() else None
