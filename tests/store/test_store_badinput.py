"""Bad input, for real: truncated files, encodings, mixed types, empty files, huge lines, duplicated files."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
from store_helpers import make_events

from adpilot.errors import UserError
from adpilot.store.ingest import IngestPolicy, ingest_file
from adpilot.store.privacy import pseudonymise

HEADER = "user_id,ts,type,item_id,price,text\n"


def _quarantine(store):
    return store.con.execute("SELECT source_row, reason FROM quarantine ORDER BY source_row").fetchall()


def test_truncated_csv_keeps_complete_rows_and_quarantines_the_cut_one(store, settings, policy, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text(HEADER + "u1,2026-03-01 10:00:00,click,i1,1.5,ok\nu2,2026-03-01 10:00:01,cli")
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert _quarantine(store) == [(2, "expected 6 fields, got 3")]


def test_truncated_csv_inside_a_quoted_field(store, settings, policy, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text(HEADER + 'u1,2026-03-01 10:00:00,click,i1,1.5,ok\nu2,2026-03-01 10:00:01,review,i1,,"long text cut')
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.rows_read, report.accepted, report.quarantined) == (2, 1, 1)


def test_truncated_parquet_is_refused_with_a_message(store, settings, policy, tmp_path):
    path = tmp_path / "cut.parquet"
    pq.write_table(make_events(500), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable Parquet file"):
        ingest_file(store, path, settings=settings, policy=policy)
    assert store.count("events") == 0


def test_gbk_file_is_decoded(store, settings, policy, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + "u1,2026-03-01 10:00:00,review,i1,,质量很好，推荐购买\n").encode("gbk"))
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert report.accepted == 1 and "decoded from GB18030" in report.notes
    assert store.con.execute("SELECT text FROM events").fetchone() == ("质量很好，推荐购买",)


def test_invalid_utf8_bytes_quarantine_only_their_row(store, settings, policy, tmp_path):
    path = tmp_path / "mixed.csv"
    good = "u1,2026-03-01 10:00:00,review,i1,,很好\n".encode()
    path.write_bytes(HEADER.encode() + good + b"u2,2026-03-01 10:00:01,review,i1,,\xff\xfe bad\n" + good.replace(
        b"u1", b"u3"))
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.accepted, report.quarantined) == (2, 1)
    assert "not valid utf-8" in _quarantine(store)[0][1]


def test_utf16_file_is_refused(store, settings, policy, tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes(HEADER.encode("utf-16"))
    with pytest.raises(UserError, match="UTF-16"):
        ingest_file(store, path, settings=settings, policy=policy)


def test_mixed_types_in_one_column(store, settings, policy, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"user_id": 7, "ts": 1772359200, "type": "click", "item_id": "i", "price": 3}\n'
                    '{"user_id": "u8", "ts": "2026-03-01T10:00:00+08:00", "type": "click", "item_id": "i", '
                    '"price": "3.5"}\n'
                    '{"user_id": "u9", "ts": "yesterday", "type": "click", "item_id": "i", "price": "cheap"}\n'
                    '[1, 2]\nnot json at all\n')
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.rows_read, report.accepted, report.quarantined) == (5, 2, 3)
    reasons = dict(_quarantine(store))
    assert "`ts` is not a timestamp: 'yesterday'" in reasons[3] and "`price` is not a number: 'cheap'" in reasons[3]
    assert reasons[4] == "line is not a JSON object" and reasons[5] == "line is not valid JSON"


def test_empty_and_header_only_files(store, settings, policy, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        ingest_file(store, empty, settings=settings, policy=policy)
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER)
    report = ingest_file(store, header_only, settings=settings, policy=policy)
    assert report.rows_read == 0 and report.reconciles


def test_a_line_over_the_cap_is_quarantined_without_reading_it_whole(store, settings, tmp_path):
    """Stands for the 2 GB line: a 3 MiB line against a 64 KiB cap read in 16 KiB blocks."""
    path = tmp_path / "long.csv"
    with open(path, "w") as handle:
        handle.write(HEADER + "u1,2026-03-01 10:00:00,review,i1,,short\n")
        handle.write("u2,2026-03-01 10:00:01,review,i1,," + "x" * (3 << 20) + "\n")
        handle.write("u3,2026-03-01 10:00:02,review,i1,,short\n")
    policy = IngestPolicy(max_record_bytes=64 << 10, block_bytes=16 << 10)
    report = ingest_file(store, path, settings=settings, policy=policy)
    assert (report.rows_read, report.accepted, report.quarantined) == (3, 2, 1)
    row, reason = _quarantine(store)[0]
    assert row == 2 and "exceeds the cap of 65536 bytes" in reason
    raw = store.con.execute("SELECT raw FROM quarantine").fetchone()[0]
    assert raw.startswith(pseudonymise("u2", settings.secret) + ",2026-03-01") and len(raw) <= 600


def test_field_over_schema_length_is_quarantined(store, settings, policy, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("user_id,ts,type,query\nu1,2026-03-01 10:00:00,search," + "q" * 1001 + "\n")
    ingest_file(store, path, settings=settings, policy=policy)
    assert _quarantine(store) == [(1, "`query` has 1001 characters, more than 1000")]


def test_duplicated_file_under_another_name(store, settings, policy, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(HEADER + "u1,2026-03-01 10:00:00,click,i1,1.5,\nu1,2026-03-01 10:00:00,click,i1,-1,\n")
    first = ingest_file(store, path, settings=settings, policy=policy)
    shutil.copy(path, tmp_path / "b.csv")
    copy = ingest_file(store, tmp_path / "b.csv", settings=settings, policy=policy)
    assert (first.accepted, first.quarantined) == (1, 1)
    assert copy.already_ingested and "already ingested" in copy.notes[-1]
    assert (store.count("events"), store.count("quarantine")) == (1, 1)
    resent = tmp_path / "c.csv"  # the same event inside another file is a duplicate, not a new event
    resent.write_text(HEADER + "u1,2026-03-01 10:00:00,click,i1,1.5,\nu5,2026-03-01 10:00:00,click,i1,2,\n")
    report = ingest_file(store, resent, settings=settings, policy=policy)
    assert (report.accepted, report.duplicates) == (1, 1) and store.count("events") == 2
