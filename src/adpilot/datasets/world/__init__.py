"""The synthetic e-commerce world: a catalogue, users, advertisers and behaviour, with the truth behind them.

``write_world(out, WorldConfig(...))`` writes, deterministically by seed and in bounded memory:

- ``events.parquet`` (``EVENT_ARROW_SCHEMA``, streamed in time-sorted row groups), ``products.parquet``,
  ``users.parquet`` (raw user ids; ingest pseudonymises them), ``advertisers.parquet``, ``campaigns.parquet``
  (``targeting`` is JSON text), ``ads.parquet``, ``creatives.parquet`` (store column names);
- ``truth/world.json`` (the config: :meth:`World.load` rebuilds the same world from it), ``truth/users.parquet``
  (latent interests over ``truth/leaves.json`` leaves, style taste, price sensitivity, bot flag...),
  ``truth/products.parquet`` (leaf, style topic, appeal, launch day: items launched late or never are cold start)
  and ``truth/creatives.parquet`` (each creative's text features).

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> stats = write_world(out, WorldConfig(n_users=300, n_events=2_000, seed=3))
>>> stats.n_events, World.load(out).population.n
(2000, 300)
"""

from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adpilot.datasets.world.behaviour import DayGenerator, review_pool
from adpilot.datasets.world.config import WorldConfig
from adpilot.datasets.world.oracle import World
from adpilot.datasets.world.vocab import STYLES
from adpilot.schema import EVENT_ARROW_SCHEMA

__all__ = ["CHUNK_ROWS", "EVENT_WRITE_OPTIONS", "World", "WorldConfig", "WorldStats", "day_counts", "write_world"]

CHUNK_ROWS = 1_000_000
EVENT_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    # Unique ids and continuous values gain nothing from a dictionary; statistics where readers prune on them.
    "use_dictionary": [n for n in EVENT_ARROW_SCHEMA.names
                       if n not in ("event_id", "session_id", "ts", "price", "value", "rating")],
    "write_statistics": ["ts", "type", "price", "value", "rating"],
}
"""Parquet writer options of ``events.parquet``."""
GENERATORS = 2
"""Threads drawing event parts at once (the machine this was tuned on has two cores)."""


@dataclass(frozen=True)
class WorldStats:
    """What :func:`write_world` wrote and how long the event stream took."""

    out: Path
    n_events: int
    n_users: int
    n_products: int
    n_ads: int
    seconds_entities: float
    seconds_events: float
    cpu_seconds_events: float  # all threads of this process, during the event stream


def day_counts(n_events: int, n_days: int, start_weekday: int) -> np.ndarray:
    """Events per day: weekends get 15% more; integer counts summing exactly to ``n_events``."""
    weekday = (start_weekday + np.arange(n_days)) % 7
    weight = np.where(weekday >= 5, 1.15, 1.0)
    share = n_events * weight / weight.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: n_events - counts.sum()]] += 1
    return counts


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def write_world(out: str | Path, config: WorldConfig, chunk_rows: int = CHUNK_ROWS) -> WorldStats:
    """Generate the world of ``config`` into folder ``out`` (created; existing world files are replaced).

    Each day's events are drawn in parts of at most ``chunk_rows`` rows (the memory bound), each from its own
    generator: the parts are part of the world's definition, so the same config and ``chunk_rows`` give the same
    files.
    """
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    world = World.generate(config)
    cat, pop, market = world.catalog, world.population, world.market
    _write(cat.table, out / "products.parquet")
    _write(pop.table, out / "users.parquet")
    for name in ("advertisers", "campaigns", "ads", "creatives"):
        _write(getattr(market, name), out / f"{name}.parquet")
    _write(pop.truth_table(), out / "truth" / "users.parquet")
    _write(pa.table({
        "product_id": cat.ids, "leaf": cat.leaf.astype(np.int16),
        "leaf_name": pa.array(world.leaf_names).take(pa.array(cat.leaf)),
        "style": cat.style.astype(np.int8), "style_name": pa.array([z for z, _ in STYLES]).take(pa.array(cat.style)),
        "appeal": cat.appeal, "popularity": cat.popularity, "launch_day": cat.launch_day.astype(np.int32),
    }), out / "truth" / "products.parquet")
    _write(pa.table({
        "creative_id": market.creatives.column("creative_id"), "quality": world.creatives.quality,
        "coverage": world.creatives.coverage, "style_mention": world.creatives.mention,
    }), out / "truth" / "creatives.parquet")
    (out / "truth" / "leaves.json").write_text(json.dumps(
        {"leaves": world.leaf_names, "leaves_en": world.leaf_names_en, "styles": world.style_names},
        ensure_ascii=False, indent=1))
    t1, cpu = time.perf_counter(), time.process_time()
    generator = DayGenerator(world, review_pool(world))
    counts = day_counts(config.n_events, config.n_days, config.start.weekday())
    parts = []
    for day, count in enumerate(counts):
        n_parts = -(-int(count) // chunk_rows)
        parts += [(day, part, int(count) * (part + 1) // n_parts - int(count) * part // n_parts)
                  for part in range(n_parts)]
    # Parts are independent (each has its own generator), so GENERATORS threads draw them while one thread
    # compresses the previous part; numpy and Arrow release the GIL. Written in order; at most GENERATORS + 1
    # parts are in memory.
    with (pq.ParquetWriter(out / "events.parquet", EVENT_ARROW_SCHEMA, **EVENT_WRITE_OPTIONS) as writer,
          ThreadPoolExecutor(max_workers=GENERATORS) as drawing, ThreadPoolExecutor(max_workers=1) as writing):
        drawn: deque[Future[pa.Table]] = deque()
        written: Future[None] = writing.submit(lambda: None)

        def write_oldest() -> Future[None]:
            table = drawn.popleft().result()
            written.result()
            return writing.submit(writer.write_table, table, row_group_size=chunk_rows)

        for day, part, n in parts:
            drawn.append(drawing.submit(generator.events, day, part, n))
            if len(drawn) >= GENERATORS:
                written = write_oldest()
        while drawn:
            written = write_oldest()
        written.result()
    (out / "truth" / "world.json").write_text(config.to_json())
    return WorldStats(out, config.n_events, pop.n, cat.n, len(market.ad_product), t1 - t0, time.perf_counter() - t1,
                      time.process_time() - cpu)
