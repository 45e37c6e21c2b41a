"""Ingestion end to end: formats, counts, idempotence, privacy, bot flags, every kind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from store_helpers import make_events

from adpilot.config import Settings
from adpilot.errors import UserError
from adpilot.schema import PRODUCT_ARROW_SCHEMA, USER_ARROW_SCHEMA
from adpilot.store import Store
from adpilot.store.ingest import ingest_file, ingest_table
from adpilot.store.privacy import pseudonymise
from adpilot.store.tables import derived_event_id_sql


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    elif path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        rows = table.to_pylist()
        path.write_text("".join(json.dumps({k: (str(v) if k == "ts" else v) for k, v in r.items()}) + "\n"
                                for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_counts_reconcile_and_reingest_adds_nothing(store, settings, policy, tmp_path, suffix):
    events = make_events(2500)
    bad = pa.table({"user_id": ["u1", "u2", ""], "ts": ["2026-03-01T00:00:00Z", "2099-01-01T00:00:00Z",
                    "2026-03-01T00:00:00Z"], "type": ["teleport", "click", "click"], "item_id": ["i", "i", "i"],
                    "price": [1.0, -3.0, 1.0], "query": pa.array([None] * 3, pa.string())})
    table = pa.concat_tables([events.cast(bad.schema), bad, events.slice(0, 10).cast(bad.schema)])
    path = _write(table, tmp_path / f"events{suffix}")
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.rows_read, report.accepted, report.quarantined, report.duplicates) == (2513, 2500, 3, 10)
    assert report.reconciles
    assert store.count("events") == 2500 and store.count("quarantine") == 3
    reasons = dict(store.con.execute("SELECT source_row, reason FROM quarantine").fetchall())
    assert "'teleport' is not one of" in reasons[2501]
    assert "`price` must be >= 0" in reasons[2502] and "in the future" in reasons[2502]
    assert reasons[2503] == "missing `user_id`"
    again = ingest_file(store, path, settings=settings, policy=policy)
    assert again.already_ingested and again.accepted == 0
    assert store.count("events") == 2500 and store.count("quarantine") == 3


def test_same_events_in_every_format_get_the_same_ids(store, settings, policy, tmp_path):
    events = make_events(300)
    ids = []
    for suffix in (".csv", ".jsonl", ".parquet"):
        path = _write(events, tmp_path / f"e{suffix}")
        report = ingest_file(store, path, settings=settings, policy=policy)
        ids.append(report.accepted)
    assert ids == [300, 0, 0]  # re-sent in another format: every event is a duplicate
    assert store.count("events") == 300


def test_user_ids_are_pseudonymised_and_pii_masked(store, settings, policy):
    table = pa.table({"user_id": ["alice@example.com", "bob"], "ts": ["2026-03-01 10:00:00"] * 2,
                      "type": ["search", "review"], "query": ["call me 13812345678", None],
                      "text": [None, "mail bob@shop.cn id 11010519491231002X"], "rating": ["4", "5"]})
    report = ingest_table(store, table, "events", "feedback", settings=settings, policy=policy)
    assert report.accepted == 2
    rows = store.con.execute("SELECT user_id, query, text FROM events ORDER BY type DESC").fetchall()
    assert rows[0] == (pseudonymise("alice@example.com", settings.secret), "call me [phone]", None)
    assert rows[1][2] == "mail [email] id [id]"
    dump = str(store.con.execute("SELECT * FROM events").fetchall())
    assert "alice" not in dump and "13812345678" not in dump


def test_production_mode_refuses_the_default_secret(store, policy):
    with pytest.raises(UserError, match="ADPILOT_SECRET"):
        ingest_table(store, make_events(3), "events", "x", settings=Settings(mode="prod"), policy=policy)


def test_bursts_are_flagged_not_dropped(store, settings, policy):
    burst = pa.table({"user_id": ["bot"] * 25 + ["human"] * 3,
                      "ts": [f"2026-03-01 10:00:00.{i:03d}" for i in range(25)] + ["2026-03-01 10:00:00"] * 3,
                      "type": ["click"] * 28, "item_id": [f"i{i}" for i in range(28)]})
    report = ingest_table(store, burst, "events", "burst", settings=settings, policy=policy)
    assert report.accepted == 28 and report.flagged == 25
    flagged = store.con.execute("SELECT count(DISTINCT user_id) FROM events WHERE bot_flag").fetchone()
    assert flagged == (1,)


def test_missing_required_column_is_refused_with_a_clear_message(store, settings, policy, tmp_path):
    path = tmp_path / "no_ts.csv"
    path.write_text("user_id,type,item_id\nu1,click,i1\n")
    with pytest.raises(UserError, match="lacks required column.*ts.*events"):
        ingest_file(store, path, settings=settings, policy=policy)


def test_catalogue_users_and_campaign_kinds(store, settings, policy, tmp_path):
    products = pa.table({"product_id": ["p1", "p2", "p3"], "title": ["鞋", "Shirt", "Bad"],
                         "description": ["", "cotton", ""], "category": [["运动", "鞋"], ["服装"], []],
                         "attributes": [[("颜色", "红")], [], []], "price": [199.0, 59.0, -1.0],
                         "brand": [None, "Acme", None], "language": ["zh", "en", "fr"]}, schema=PRODUCT_ARROW_SCHEMA)
    report = ingest_file(store, _write(products, tmp_path / "products.parquet"), settings=settings, policy=policy)
    assert (report.kind, report.accepted, report.quarantined) == ("products", 2, 1)
    assert store.con.execute("SELECT category, attributes FROM products WHERE product_id = 'p1'").fetchone() == (
        ["运动", "鞋"], {"颜色": "红"})
    users = pa.table({"user_id": ["u1", "u2"], "gender": ["f", "q"], "age_band": ["25-34", None], "geo": ["CN", None],
                      "consent_personalisation": [True, False], "consent_ads": [True, True]}, schema=USER_ARROW_SCHEMA)
    report = ingest_file(store, _write(users, tmp_path / "users.parquet"), settings=settings, policy=policy)
    assert (report.kind, report.accepted, report.quarantined) == ("users", 1, 1)
    assert store.con.execute("SELECT user_id FROM users").fetchone() == (pseudonymise("u1", settings.secret),)
    campaigns = tmp_path / "campaigns.jsonl"
    campaigns.write_text(json.dumps({"campaign_id": "c1", "advertiser_id": "a1", "name": "Spring",
                                     "total_budget": 1000, "daily_budget": 100,
                                     "targeting": {"interests": ["running"], "hours": [9, 10]}}) + "\n")
    report = ingest_file(store, campaigns, settings=settings, policy=policy)
    assert (report.kind, report.accepted) == ("campaigns", 1)
    row = store.con.execute("SELECT status, bid_strategy, targeting->>'$.interests[0]' FROM campaigns").fetchone()
    assert row == ("active", "manual_cpc", "running")
    ads = tmp_path / "ads.csv"
    ads.write_text("ad_id,campaign_id,product_id,status\nad1,c1,p1,paused\nad1,c1,p1,paused\n")
    report = ingest_file(store, ads, settings=settings, policy=policy)
    assert (report.kind, report.accepted, report.duplicates) == ("ads", 1, 1)


def test_click_rates_per_minute_are_flagged(store, settings, policy):
    """70 clicks in one minute at a human pace per second (< 10/s) still exceed 60 clicks a minute."""
    clicks = pa.table({"user_id": ["fast"] * 70 + ["slow"] * 30,
                       "ts": [f"2026-03-01 10:00:{i * 0.8:06.3f}" for i in range(70)]
                       + [f"2026-03-01 10:{i:02d}:00" for i in range(30)],
                       "type": ["click"] * 100, "item_id": ["i"] * 100})
    report = ingest_table(store, clicks, "events", "clicks", settings=settings, policy=policy)
    assert report.accepted == 100 and report.flagged == 70


def test_creatives_keep_their_scores_as_json(store, settings, policy):
    creatives = pa.table({"creative_id": ["c1", "c2"], "ad_id": ["a1", "a1"], "text": ["春季新品 限时八折", ""],
                          "source": ["llm", "llm"],
                          "scores": pa.array([[("fluency", 0.9)], []], pa.map_(pa.string(), pa.float64()))})
    report = ingest_table(store, creatives, "creatives", "studio", settings=settings, policy=policy)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert store.con.execute("SELECT scores->>'$.fluency', language FROM creatives").fetchone() == ("0.9", "zh")


def test_feedback_with_store_ids_is_not_hashed_twice(store, settings, policy):
    stored_id = pseudonymise("carol", settings.secret)
    feedback = pa.table({"user_id": [stored_id], "ts": ["2026-03-01 10:00:00"], "type": ["ad_click"], "ad_id": ["a1"]})
    ingest_table(store, feedback, "events", "serve", settings=settings, policy=policy, already_pseudonymous=True)
    assert store.con.execute("SELECT user_id FROM events").fetchone() == (stored_id,)


def test_bursts_split_across_batches_are_flagged_and_busy_humans_are_not(store, settings, policy):
    """Batches of 10 rows: a 25-event burst and 70 fast clicks each span several batches; a user with 20 clicks
    spread over 20 seconds of one minute is busy enough to be examined, but is neither kind of bot."""
    users = ["bot"] * 25 + ["fast"] * 70 + ["busy"] * 20
    ts = ([f"2026-03-01 10:00:00.{i:03d}" for i in range(25)] + [f"2026-03-01 10:05:{i * 0.8:06.3f}" for i in range(70)]
          + [f"2026-03-01 10:10:{i * 2:02d}" for i in range(20)])
    table = pa.table({"user_id": users, "ts": ts, "type": ["click"] * 115, "item_id": ["i"] * 115})
    small = dataclasses.replace(policy, batch_rows=10)
    report = ingest_table(store, table, "events", "split", settings=settings, policy=small)
    assert report.accepted == 115 and report.flagged == 95
    flagged = store.con.execute("SELECT count(*) FROM events WHERE bot_flag AND ts >= '2026-03-01 10:10:00'").fetchone()
    assert flagged == (0,)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_quarantined_rows_carry_the_pseudonym_not_the_raw_user_id(store, settings, policy, tmp_path, suffix):
    """Rejected in validation (every format) or by the reader (a short CSV record, a line that is not JSON):
    the raw id is gone from ``quarantine.raw`` and the stored id is there, so the row is found by it."""
    table = pa.table({"user_id": ["alice.w", "bob.k"], "ts": ["2026-03-01 10:00:00", "2026-03-01 10:00:01"],
                      "type": ["teleport", "click"], "item_id": ["i1", "i2"], "price": ["1.5", "-2"]})
    path = _write(table, tmp_path / f"bad{suffix}")
    with open(path, "a") as handle:
        if suffix == ".csv":
            handle.write('carol.z,"2026-03-01 10:00:02",click\n')
        elif suffix == ".jsonl":
            handle.write('{"user_id": "carol.z", "ts": "2026-03-01 10:00:02", "type": "cli\n')
    report = ingest_file(store, path, settings=settings, policy=policy)
    users = ["alice.w", "bob.k"] + (["carol.z"] if suffix != ".parquet" else [])
    assert report.quarantined == len(users)
    raws = [r for (r,) in store.con.execute("SELECT raw FROM quarantine ORDER BY source_row").fetchall()]
    for raw, user in zip(raws, users, strict=True):
        assert user not in raw and pseudonymise(user, settings.secret) in raw
        assert "2026-03-01 10:00:0" in raw  # still readable


def test_json_ids_are_hidden_alike_in_python_and_sql(settings):
    """The SQL expression (rows rejected in validation) and the Python one (records the reader refused) agree,
    also for numbers, escapes, lines cut short and lines without a user id."""
    import duckdb

    from adpilot.store.privacy import hide_json_ids, hide_json_ids_sql, install_pseudonym_macro

    lines = ['{"user_id": "a\\"b", "ts": 1}', '{"ts": 2, "user_id":7}', '{"user_id": "cut sh', '{"ts": 3}',
             '{"user_id": null}', 'not json "user_id" : abc}']
    con = duckdb.connect()
    install_pseudonym_macro(con, settings.secret)
    for line in lines:
        sql = con.execute(f"SELECT {hide_json_ids_sql('line', 'user_id')} FROM (SELECT ? AS line)", [line]).fetchall()[0][0]
        assert sql == hide_json_ids(line, ["user_id"], settings.secret), line
    assert pseudonymise('a"b', settings.secret) in hide_json_ids(lines[0], ["user_id"], settings.secret)
    assert pseudonymise("7", settings.secret) in hide_json_ids(lines[1], ["user_id"], settings.secret)
    assert hide_json_ids(lines[3], ["user_id"], settings.secret) == lines[3]


def test_copies_inside_a_batch_of_a_changed_file_at_the_same_path(store, settings, policy, tmp_path):
    """A file ingested, then changed in place (new content, same path and row numbers): its first version's rows
    are neither taken for the new batch's rows nor deleted as copies, and copies inside the new batch keep their
    first row only."""
    path = tmp_path / "events.parquet"
    first = make_events(500, seed=1)
    pq.write_table(first, path)
    assert ingest_file(store, path, settings=settings, policy=policy).accepted == 500
    fresh = make_events(400, seed=2).slice(100)  # 300 other events, in the first file's time span
    changed = pa.concat_tables([first.slice(0, 200), fresh, fresh.slice(0, 50)])  # 200 known, 300 new, 50 copies
    pq.write_table(changed, path)
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.rows_read, report.accepted, report.duplicates) == (550, 300, 250) and report.reconciles
    assert store.count("events") == 800
    distinct = "SELECT count(*), count(DISTINCT (ts, user_id, type, item_id, price, query)) FROM events"
    assert store.con.execute(distinct).fetchone() == (800, 800)
    assert store.con.execute("SELECT max(source_row) FROM events").fetchone() == (500,)  # copies (501-550) dropped


def test_ingest_restores_insertion_order(store, settings, policy):
    """Ingest turns insertion order off for its own inserts only; the connection gets its setting back."""
    order = "SELECT current_setting('preserve_insertion_order')"
    assert store.con.execute(order).fetchall() == [(True,)]
    ingest_table(store, make_events(20), "events", "x", settings=settings, policy=policy)
    assert store.con.execute(order).fetchall() == [(True,)]


def test_an_event_is_known_by_its_id_or_else_by_all_its_fields(store, settings, policy, tmp_path):
    """With an id: (id, ts), whatever the content. Without: every field, NULL equal to NULL, so events sharing the
    time and user but differing in one field (or a NULL) are distinct, inside a batch and across batches."""
    base = {"event_id": None, "user_id": "u1", "ts": "2026-03-01T10:00:00Z", "type": "click", "item_id": "i1",
            "price": 1.5, "query": None}
    rows = [base, {**base, "price": 2.5}, {**base, "price": None}, {**base, "query": "shoes"}, {**base, "type": "CLICK "},
            {**base, "event_id": "e1"}, {**base, "event_id": "e1", "price": 9.0}, {**base, "event_id": "e2"},
            {**base, "price": None}]
    first = ingest_file(store, _write(pa.Table.from_pylist(rows), tmp_path / "a.jsonl"), settings=settings,
                        policy=policy)
    assert (first.accepted, first.duplicates) == (6, 3) and first.reconciles  # " CLICK" is `click`: a copy
    again = [*rows, {**base, "event_id": "e1", "ts": "2026-03-01T10:00:01Z"}, {**base, "ts": "2026-03-01T10:00:01Z"}]
    path = _write(pa.Table.from_pylist(again), tmp_path / "b.parquet")
    second = ingest_file(store, path, settings=settings, policy=policy)
    assert (second.accepted, second.duplicates) == (2, 9) and store.count("events") == 8
    ids = store.con.execute("SELECT event_id, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()
    assert ids == [("e1", 2), ("e2", 1), (None, 5)]
    stored = store.con.execute("SELECT price FROM events WHERE event_id = 'e1' ORDER BY ts").fetchall()
    assert stored == [(1.5,), (1.5,)]  # the first row of an id wins
    no_ids = pa.Table.from_pylist([base, {**base, "price": 7.0}]).drop_columns(["event_id"])
    third = ingest_file(store, _write(no_ids, tmp_path / "c.csv"), settings=settings, policy=policy)
    assert (third.accepted, third.duplicates) == (1, 1) and store.count("events") == 9


def test_a_store_of_the_previous_layout_is_migrated_and_still_knows_its_events(settings, policy, tmp_path):
    """A store whose events still have derived ids under NOT NULL and a 128-bit ``event_key`` (the previous layout)
    is migrated when opened: derived ids cleared, the key column dropped, so events re-sent after the upgrade are
    still duplicates; given ids stay."""
    path = tmp_path / "old.duckdb"
    events = make_events(10)
    with Store(path) as old:
        ingest_table(old, events, "events", "before", settings=settings, policy=policy)
        old.con.execute(f"UPDATE events SET event_id = {derived_event_id_sql()}")
        old.con.execute("UPDATE events SET event_id = 'given' WHERE source_row = 1")
        old.con.execute("ALTER TABLE events ADD COLUMN event_key UHUGEINT")
        old.con.execute("UPDATE events SET event_key = md5_number(event_id)")
        for column in ("event_id", "event_key"):
            old.con.execute(f"ALTER TABLE events ALTER COLUMN {column} SET NOT NULL")
    with Store(path) as store:
        assert store.con.execute("SELECT count(event_id), min(event_id) FROM events").fetchall() == [(1, "given")]
        columns = {name for (name,) in store.con.execute("SELECT column_name FROM (DESCRIBE events)").fetchall()}
        assert "event_key" not in columns
        more = make_events(12, seed=5).slice(10)  # two later events
        again = ingest_table(store, pa.concat_tables([events.slice(1), more]), "events", "after", settings=settings,
                             policy=policy)
        assert (again.accepted, again.duplicates) == (2, 9) and store.count("events") == 12
