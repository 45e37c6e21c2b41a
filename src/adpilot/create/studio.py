"""The batch studio: copy for every (ad, audience) of a campaign or product, written into ``creatives``.

Each (ad, audience) pair is one unit of work committed in one transaction together with its decision log, so a
crash loses no finished pair and never leaves a half-written one; a re-run skips pairs already decided for the
same model. Completions go through :class:`~adpilot.create.cache.CachedLLM`, so a repeated prompt and seed is
never sent twice. Audiences come from ``segments`` (description) and ``profiles`` (top keywords of the members)
— aggregate, readable facts only, never user ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adpilot.create.prompts import Audience, CopySpec, ProductBrief
from adpilot.create.retrieval import NEIGHBOURS, CopyExample, CopyPool
from adpilot.create.scoring import score_creatives
from adpilot.create.writer import CopyWriter, Decision
from adpilot.errors import UserError

DECISIONS_DDL = """CREATE TABLE IF NOT EXISTS creative_decisions (
    ad_id VARCHAR NOT NULL, audience VARCHAR NOT NULL, model VARCHAR NOT NULL, draft VARCHAR, creative_id VARCHAR,
    action VARCHAR NOT NULL, reasons JSON, created_at TIMESTAMPTZ DEFAULT current_timestamp)"""
GENERAL = Audience(description="", interests=(), key="all")


@dataclass(frozen=True)
class Job:
    """One (ad, audience) pair to write for."""

    ad_id: str
    product: ProductBrief
    language: str
    audience: Audience


@dataclass
class RunStats:
    """Counts of one studio run."""

    pairs: int = 0
    skipped: int = 0
    written: int = 0
    rejected: int = 0
    actions: dict[str, int] = field(default_factory=dict)


def table_exists(con: Any, name: str) -> bool:
    """True when the store has a table called ``name`` (segments and profiles belong to another room)."""
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def audiences(con: Any, interests_per_segment: int = 5) -> list[Audience]:
    """The general audience plus one per segment, with its members' most common profile keywords."""
    result = [GENERAL]
    if not table_exists(con, "segments"):
        return result
    has_keywords = table_exists(con, "profiles")
    for segment_id, description in con.execute(
            "SELECT segment_id, coalesce(description, '') FROM segments ORDER BY segment_id").fetchall():
        interests: tuple[str, ...] = ()
        if has_keywords:
            rows = con.execute("SELECT kw FROM (SELECT unnest(keywords) AS kw FROM profiles WHERE segment_id = ?) "
                               "GROUP BY kw ORDER BY count(*) DESC, kw LIMIT ?",
                               [segment_id, interests_per_segment]).fetchall()
            interests = tuple(str(r[0]) for r in rows)
        result.append(Audience(description=description, interests=interests, key=f"segment:{segment_id}"))
    return result


def jobs(con: Any, campaign_id: str | None = None, product_id: str | None = None, ad_id: str | None = None,
         with_segments: bool = True) -> list[Job]:
    """Pairs to write for: the ads selected by campaign, product or ad id, times the audiences."""
    where, params = [], []
    for column, value in (("a.campaign_id", campaign_id), ("a.product_id", product_id), ("a.ad_id", ad_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if not where:
        raise UserError("give one of `--campaign`, `--product` or `--ad`")
    rows = con.execute(
        "SELECT a.ad_id, p.title, p.attributes, p.price, p.brand, p.category, p.description, p.language "
        "FROM ads a JOIN products p USING (product_id) WHERE " + " AND ".join(where) + " ORDER BY a.ad_id",
        params).fetchall()
    if not rows:
        raise UserError(f"no ads match campaign={campaign_id!r} product={product_id!r} ad={ad_id!r}")
    people = audiences(con) if with_segments else [GENERAL]
    result: list[Job] = []
    for ad, title, attributes, price, brand, category, description, language in rows:
        brief = ProductBrief.from_record(title, dict(attributes or {}), price, brand, category, description)
        result.extend(Job(ad, brief, language if language in ("zh", "en") else "zh", a) for a in people)
    return result


def human_pool(con: Any) -> list[CopyExample]:
    """Human-written creatives in the store, paired with their products: the default few-shot corpus, in creative
    id order (retrieval breaks ties by pool order, and a store returns rows in no set order)."""
    rows = con.execute(
        "SELECT p.title, p.attributes, p.price, p.brand, p.category, p.description, c.text FROM creatives c "
        "JOIN ads a USING (ad_id) JOIN products p USING (product_id) WHERE c.source = 'human' "
        "ORDER BY c.creative_id").fetchall()
    return [CopyExample(ProductBrief.from_record(t, dict(at or {}), pr, b, cat, d), text)
            for t, at, pr, b, cat, d, text in rows]


def creative_id(ad_id: str, audience: str, model: str, text: str) -> str:
    """Stable id: the same copy for the same ad, audience and model is the same creative."""
    return "cr_" + hashlib.sha256("\x1f".join((ad_id, audience, model, text)).encode()).hexdigest()[:20]


class Studio:
    """Writes creatives for jobs; ``pool`` (fitted) supplies few-shot examples, ``perplexity`` the fluency score."""

    def __init__(self, con: Any, writer: CopyWriter, pool: CopyPool | None = None, slot: str = "feed",
                 seed: int = 0, perplexity: Callable[[Sequence[str]], Sequence[float]] | None = None,
                 ctr: Callable[[Sequence[str]], Sequence[float]] | None = None) -> None:
        self.con = con
        self.writer = writer
        self.pool = pool
        self.slot = slot
        self.seed = seed
        self.perplexity = perplexity
        self.ctr = ctr
        self.con.execute(DECISIONS_DDL)

    @property
    def model(self) -> str:
        return self.writer.llm.name

    def done(self, job: Job) -> bool:
        """True when this pair was already decided for this model (resume)."""
        row = self.con.execute("SELECT count(*) FROM creative_decisions WHERE ad_id = ? AND audience = ? "
                               "AND model = ?", [job.ad_id, job.audience.key, self.model]).fetchone()
        return bool(row and row[0])

    def write_job(self, job: Job) -> list[Decision]:
        """Generate, review and store one pair atomically; returns its decisions."""
        spec = CopySpec(language=job.language, slot=self.slot)
        near = []
        if self.pool is not None and self.pool.examples_:
            near = [self.pool.examples_[i] for i in self.pool.query(job.product, k=max(self.pool.k, NEIGHBOURS))]
        seed = self.seed + int(hashlib.sha256(f"{job.ad_id}|{job.audience.key}".encode()).hexdigest()[:6], 16)
        shots = near[:self.pool.k] if self.pool is not None else []
        decisions = self.writer.write(job.product, job.audience, spec, shots, seed=seed, neighbours=near)
        live = [d for d in decisions if d.text is not None]
        scores = score_creatives([d.text or "" for d in live], job.product, self.perplexity, self.ctr)
        self._store(job, spec, decisions, dict(zip(map(id, live), scores, strict=True)))
        return decisions

    def _store(self, job: Job, spec: CopySpec, decisions: list[Decision], scores: dict[int, dict]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            for d in decisions:
                cid = creative_id(job.ad_id, job.audience.key, self.model, d.text) if d.text else None
                if d.text is not None:
                    row_scores = {**scores[id(d)], "rank": d.rank_score}
                    self.con.execute(
                        "INSERT OR REPLACE INTO creatives (creative_id, ad_id, text, language, slot, audience, "
                        "source, model, scores, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active')",
                        [cid, job.ad_id, d.text, spec.language, spec.slot, job.audience.key,
                         "retrieval" if d.origin == "retrieval" else self.writer.llm.source, self.model,
                         json.dumps(row_scores)])
                self.con.execute(
                    "INSERT INTO creative_decisions (ad_id, audience, model, draft, creative_id, action, reasons) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [job.ad_id, job.audience.key, self.model, d.draft, cid, d.action,
                     json.dumps(list(d.reasons), ensure_ascii=False)])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def run(self, todo: Sequence[Job], on_progress: Callable[[int], None] | None = None) -> RunStats:
        """Write every pair not done yet; progress is reported after each pair."""
        stats = RunStats(pairs=len(todo))
        for job in todo:
            if self.done(job):
                stats.skipped += 1
            else:
                for d in self.write_job(job):
                    stats.actions[d.action] = stats.actions.get(d.action, 0) + 1
                    stats.written += d.text is not None
                    stats.rejected += d.action == "rejected"
            if on_progress is not None:
                on_progress(1)
        return stats
