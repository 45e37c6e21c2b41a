"""Builds what a server process runs on from the settings: the store snapshot, scorer, encoder and counters."""

from __future__ import annotations

from collections.abc import Callable

from adpilot.config import Settings
from adpilot.deliver.base import Counters
from adpilot.deliver.counters import InProcessCounters, RedisCounters
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.scorer import load_scorer
from adpilot.deliver.snapshot import Snapshot
from adpilot.errors import UserError
from adpilot.serve.store_access import StoreAccess

SNAPSHOT_WAIT_S = 300.0  # a build waits this long for another process's write (or ingest) to let go of the store


def make_counters(settings: Settings) -> Counters:
    """Redis when ``ADPILOT_REDIS_URL`` is set (several processes share budgets and caps), else in-process."""
    return RedisCounters(settings.redis_url) if settings.redis_url else InProcessCounters()


def engine_factory(settings: Settings, counters: Counters | None = None) -> Callable[[], DecisionEngine]:
    """A function building a fresh engine snapshot from the store: read-only, one process at a time (see
    :mod:`adpilot.serve.store_access`); counters persist across refreshes."""
    from adpilot.understand.registry import get_encoder

    if settings.scorer_path is None:
        raise UserError("set ADPILOT_SCORER_PATH to a trained scorer (the demo writes data/models/scorer.json)")
    shared = counters if counters is not None else make_counters(settings)
    encoder = get_encoder(settings.encoder, settings)
    scorer_path = settings.scorer_path
    access = StoreAccess(settings.resolved_store_path)

    def build() -> DecisionEngine:
        with access.build_turn(), access.reader(wait_s=SNAPSHOT_WAIT_S) as store:
            snapshot = Snapshot.from_store(store, load_scorer(scorer_path), encoder)
        return DecisionEngine(snapshot, shared, settings)

    return build
