"""kill -9 in the middle of an ingest, then run it again: same store as one clean run, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from store_helpers import NOW, make_events

from adpilot.store import Store
from adpilot.store.ingest import IngestPolicy, ingest_file

CHILD = textwrap.dedent("""
    import sys
    from datetime import datetime
    from adpilot.config import Settings
    from adpilot.store import Store
    from adpilot.store.ingest import IngestPolicy, ingest_file
    policy = IngestPolicy(now=datetime.fromisoformat(sys.argv[3]), batch_rows=2000, block_bytes=128 << 10)
    with Store(sys.argv[2]) as store:
        ingest_file(store, sys.argv[1], settings=Settings(mode="test", secret=sys.argv[4]), policy=policy,
                    progress=lambda done, total: print("batch", done, flush=True))
    print("finished", flush=True)
""")


def _snapshot(store: Store) -> tuple:
    events = store.con.execute("SELECT count(*), count(DISTINCT (ts, user_id, type, item_id, price, query)), "
                               "sum(hash(source_row)) FROM events").fetchone()
    quarantine = store.con.execute("SELECT count(*), count(DISTINCT source_row) FROM quarantine").fetchone()
    return events, quarantine


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_kill_9_mid_ingest_then_rerun_equals_a_clean_run(tmp_path, settings, suffix):
    events = make_events(30_000, seed=3)
    table = pa.concat_tables([events, events.slice(100, 500)])  # re-sent events inside the same file
    price = table.column("price").to_numpy().copy()
    price[::997] = -1.0  # some outliers to quarantine
    table = table.set_column(table.schema.get_field_index("price"), "price", pa.array(price))
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=4000)
    killed = tmp_path / "killed.duckdb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(killed), NOW.isoformat(), settings.secret],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(4):  # let a few batches commit, then kill without warning
        assert child.stdout.readline().startswith("batch")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    policy = IngestPolicy(now=NOW, batch_rows=2000, block_bytes=128 << 10)
    with Store(killed) as store:
        partial = store.count("events")
        assert 0 < partial < 30_000
        resumed = ingest_file(store, path, settings=settings, policy=policy)
        assert resumed.resumed_at_row > 0 and resumed.reconciles
        after_kill = _snapshot(store)
    with Store(tmp_path / "clean.duckdb") as store:
        clean = ingest_file(store, path, settings=settings, policy=policy)
        assert _snapshot(store) == after_kill
    assert (resumed.rows_read, resumed.accepted, resumed.quarantined, resumed.duplicates) == (
        clean.rows_read, clean.accepted, clean.quarantined, clean.duplicates)
    assert clean.rows_read == 30_500 and clean.duplicates == 500
