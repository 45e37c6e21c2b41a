"""Ingest speed and memory: validated ingest of Parquet and CSV events vs a bare DuckDB insert.

Generates its own seeded input (about 1% bad rows, some PII in queries, no event ids: events are known by their content),
then runs each phase in a fresh subprocess so peak RSS is per phase:

    .venv/bin/python benchmarks/bench_store_ingest.py --rows 10000000 --csv-rows 2000000

``bare`` is ``CREATE TABLE AS SELECT * FROM read_parquet(...)`` (no validation) and closing the database: both
sides are timed until the database is closed, i.e. checkpointed into the file. The ratio printed is validated-ingest throughput over bare throughput, measured in the same run on the same machine; the same
ratio per CPU-second (user + system time of each phase) is printed too, as wall time on a shared machine
depends on how many cores the phase could get. Two more peers insert the columns ingest stores in one bare INSERT
(no checks, cleaning, de-duplication or batches), the least that writing adpilot's ``events`` table costs, so the
distance to them is the price of checking and cleaning: ``stored columns`` is the current layout (a 32-hex-digit
user id, nothing derived per event), ``md5 key layout`` the previous one's derived id (an ``event_id`` made from the
MD5 hex of the content), which shows what such a derived key costs. ``--peer-src``
times another version of adpilot on the same inputs in the same run (before/after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

TYPES = np.array(["page_view", "search", "click", "add_to_cart", "purchase", "review", "ad_impression", "ad_click"])
TYPE_P = np.array([0.40, 0.10, 0.15, 0.05, 0.02, 0.02, 0.20, 0.06])


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def make_events(rows: int, seed: int) -> pa.Table:
    """``rows`` events of 200k users over 30 days; ~1% invalid (negative price, future ts, unknown type)."""
    rng = np.random.default_rng(seed)
    types = TYPES[rng.choice(len(TYPES), size=rows, p=TYPE_P)]
    bad = rng.random(rows) < 0.01
    types[bad & (rng.random(rows) < 0.3)] = "teleport"
    start = np.datetime64("2026-01-01T00:00:00", "us").astype(np.int64)
    ts = np.sort(start + rng.integers(0, 30 * 86400 * 10**6, rows))
    ts[bad & (rng.random(rows) < 0.3)] += 10 * 365 * 86400 * 10**6
    is_ad = np.isin(types, ["ad_impression", "ad_click"])
    priced = np.isin(types, ["add_to_cart", "purchase"])
    price = np.where(priced, np.round(rng.gamma(2.0, 80.0, rows), 2), np.nan)
    price[bad & (rng.random(rows) < 0.4)] = -5.0
    search = types == "search"
    query = np.where(search, np.array(["篮球鞋", "running shoes", "连衣裙 夏", "call 13800138000 please"])[
        rng.integers(0, 4, rows)], None)
    review = types == "review"
    return pa.table({
        "user_id": _ids("user", rng.integers(0, 200_000, rows)),
        "session_id": _ids("s", rng.integers(0, 2_000_000, rows)),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "type": pa.array(types),
        "item_id": pc.if_else(pa.array(is_ad | search), pa.nulls(rows, pa.string()),
                              _ids("item", rng.integers(0, 100_000, rows))),
        "ad_id": pc.if_else(pa.array(is_ad), _ids("ad", rng.integers(0, 2_000, rows)), pa.nulls(rows, pa.string())),
        "price": pa.array(price, from_pandas=True),
        "query": pa.array(query, pa.string()),
        "text": pa.array(np.where(review, "质量很好 good quality", None), pa.string()),
        "rating": pa.array(np.where(review, rng.integers(1, 6, rows).astype(float), np.nan), from_pandas=True),
        "device": pa.array(np.array(["ios", "android", "web"])[rng.integers(0, 3, rows)]),
        "geo": pa.array(np.array(["CN-BJ", "CN-SH", "CN-GD", "CN-ZJ"])[rng.integers(0, 4, rows)]),
        "slot": pc.if_else(pa.array(is_ad), pa.scalar("feed_1"), pa.nulls(rows, pa.string())),
    })


def _stored_columns(path: str, store: str, derived_key: bool) -> int:
    """The columns ingest stores, made in one bare INSERT (no checks, cleaning, de-duplication or batches), with
    ``user_id`` a 32-hex-digit hash like a pseudonym. ``derived_key``: also ``event_id`` the MD5 hex of the content,
    as the previous layout stored it."""
    from adpilot.store import Store

    reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
    with Store(store) as db:
        db.con.execute("SET memory_limit = '600MB'")
        db.con.execute("SET preserve_insertion_order = false")
        names = [r[0] for r in db.con.execute(f"DESCRIBE SELECT * FROM {reader}('{path}')").fetchall()]
        content = ", ".join(f"coalesce(CAST(\"{n}\" AS VARCHAR), '\\N')" for n in names)
        key = f"md5(concat_ws(chr(31), {content})) AS event_id," if derived_key else ""
        db.con.execute(f"""INSERT INTO events BY NAME
            SELECT * REPLACE (md5(user_id) AS user_id)
            FROM (SELECT *, {key} ? AS source_file, 0 AS source_row FROM {reader}('{path}'))""", [path])
        return db.count("events")


def _child(phase: str, path: str, store: str, batch_rows: int) -> None:
    """One phase, timed until the database is closed; prints its figures as JSON. ``batch_rows`` 0: the default."""
    os.environ.setdefault("ADPILOT_MODE", "test")
    started = time.perf_counter()
    if phase == "bare":
        import duckdb

        con = duckdb.connect(store)
        con.execute("SET memory_limit = '600MB'")
        reader = "read_parquet" if path.endswith(".parquet") else "read_csv"
        con.execute(f"CREATE TABLE bare AS SELECT * FROM {reader}('{path}')")
        rows = con.execute("SELECT count(*) FROM bare").fetchone()[0]
        con.close()  # checkpoints, as closing the store does after an ingest
        extra = {}
    elif phase in ("columns", "columns-md5"):
        rows, extra = _stored_columns(path, store, derived_key=phase == "columns-md5"), {}
    else:
        from adpilot.store import Store
        from adpilot.store.ingest import IngestPolicy, ingest_file

        with Store(store) as db:
            policy = IngestPolicy(batch_rows=batch_rows) if batch_rows else IngestPolicy()
            report = ingest_file(db, path, policy=policy)
        rows = report.rows_read
        extra = {"accepted": report.accepted, "quarantined": report.quarantined,
                 "duplicates": report.duplicates, "flagged": report.flagged, "reconciles": report.reconciles}
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "rss_mb": _peak_rss_mb(), **extra}))


def _load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1/5/15 min)"


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(phase: str, path: Path, workdir: Path, batch_rows: int, store: Path | None = None,
         src: Path | None = None) -> dict[str, float]:
    """Run one phase in a fresh process (importing adpilot from ``src`` when given); a given ``store`` is kept,
    otherwise a scratch one is used."""
    scratch = store is None
    store = store or workdir / f"{phase}-{path.suffix[1:]}.duckdb"
    if scratch:
        store.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(src.resolve())} if src else None
    out = subprocess.run([sys.executable, __file__, "--child", phase, str(path), str(store), str(batch_rows)],
                         check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if scratch:
        store.unlink(missing_ok=True)
    return result


def _resend(events: pa.Table, workdir: Path, batch_rows: int) -> None:
    """De-duplication against a big table: the last 100k events again plus 100k new ones, into the full store
    (every stored event in that time span is probed) and into an empty store, same file."""
    tail = events.slice(events.num_rows - 100_000)
    shifted = pc.add(tail.column("ts"), pa.scalar(1, pa.duration("us")))  # new events: 1 µs later
    fresh = tail.set_column(tail.schema.get_field_index("ts"), "ts", shifted)
    path = workdir / "resend.parquet"
    pq.write_table(pa.concat_tables([tail, fresh]), path)
    big = _run("ingest", path, workdir, batch_rows, store=workdir / "full-parquet.duckdb")
    empty = _run("ingest", path, workdir, batch_rows)
    print(f"re-send  200k events (100k already stored) into the {events.num_rows:,}-event store: {big['seconds']:.2f} s, "
          f"duplicates {big['duplicates']:,}; into an empty store: {empty['seconds']:.2f} s "
          f"(ratio {big['seconds'] / empty['seconds']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="events in the Parquet file")
    parser.add_argument("--csv-rows", type=int, default=2_000_000, help="events in the CSV file")
    parser.add_argument("--batch-rows", type=int, default=0, help="rows per batch (default: the policy's)")
    parser.add_argument("--peer-src", type=Path, default=None,
                        help="a src/ folder holding another adpilot (e.g. `git archive HEAD src | tar -x -C DIR`): "
                             "its validated ingest is timed too, in the same run, as 'before'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where inputs and stores go (default: a temp dir)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, path, store, batch_rows = args.child
        _child(phase, path, store, int(batch_rows))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        parquet, csv = workdir / "events.parquet", workdir / "events.csv"
        pq.write_table(make_events(args.rows, args.seed), parquet, row_group_size=1 << 20)
        pa_csv.write_csv(make_events(args.csv_rows, args.seed + 1), csv)
        print(f"inputs: {parquet.stat().st_size / 2**20:.0f} MiB Parquet ({args.rows:,} rows), "
              f"{csv.stat().st_size / 2**20:.0f} MiB CSV ({args.csv_rows:,} rows); "
              f"load average {_load()}, {os.cpu_count()} cores")
        for path in (parquet, csv):
            bare = _run("bare", path, workdir, args.batch_rows)
            full = _run("ingest", path, workdir, args.batch_rows, store=workdir / f"full-{path.suffix[1:]}.duckdb")
            rate, bare_rate = full["rows"] / full["seconds"], bare["rows"] / bare["seconds"]
            print(f"{path.suffix[1:]:8s} validated ingest: {rate:12,.0f} events/s ({full['seconds']:.1f} s, "
                  f"peak RSS {full['rss_mb']:.0f} MiB) | bare insert: {bare_rate:12,.0f} events/s "
                  f"(peak RSS {bare['rss_mb']:.0f} MiB) | ratio validated/bare = {rate / bare_rate:.2f}")
            cpu_rate, bare_cpu_rate = full["rows"] / full["cpu"], bare["rows"] / bare["cpu"]
            print(f"         per CPU-second (steadier on a loaded machine): validated {cpu_rate:,.0f} events, "
                  f"bare {bare_cpu_rate:,.0f} events, ratio {cpu_rate / bare_cpu_rate:.2f}")
            for phase, label in (("columns", "stored columns"), ("columns-md5", "md5 key layout")):
                peer = _run(phase, path, workdir, args.batch_rows)
                print(f"         bare insert, {label} (no checks): {peer['rows'] / peer['seconds']:,.0f} events/s, "
                      f"{peer['rows'] / peer['cpu']:,.0f} per CPU-s, peak RSS {peer['rss_mb']:.0f} MiB; validated/that: "
                      f"wall {peer['seconds'] / full['seconds']:.2f}, CPU {peer['cpu'] / full['cpu']:.2f}")
            print(f"         counts: {({k: full[k] for k in ('accepted', 'quarantined', 'duplicates', 'flagged')})}"
                  f" reconcile={full['reconciles']}")
            if args.peer_src:
                before = _run("ingest", path, workdir, args.batch_rows, src=args.peer_src)
                print(f"         before ({args.peer_src}): {before['rows'] / before['seconds']:,.0f} events/s "
                      f"({before['seconds']:.1f} s, peak RSS {before['rss_mb']:.0f} MiB), "
                      f"{before['rows'] / before['cpu']:,.0f} per CPU-s; after/before: wall "
                      f"{before['seconds'] / full['seconds']:.2f}x, CPU {before['cpu'] / full['cpu']:.2f}x")
        _resend(make_events(args.rows, args.seed), workdir, args.batch_rows)
    peer = f" --peer-src {args.peer_src}" if args.peer_src else ""
    print(f"reproduce: .venv/bin/python benchmarks/bench_store_ingest.py --rows {args.rows} "
          f"--csv-rows {args.csv_rows} --batch-rows {args.batch_rows} --seed {args.seed}{peer}")
    print(f"load average at the end: {_load()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
