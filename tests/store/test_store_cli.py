"""The store's commands through the real ``adpilot`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ADPILOT = [sys.executable, "-c", "from adpilot.cli import main; main()"]
ENV = {**os.environ, "ADPILOT_MODE": "test", "COLUMNS": "200"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ADPILOT, *args], capture_output=True, text=True, env=ENV, timeout=120)


def test_ingest_stats_and_quarantine_show(tmp_path: Path):
    data = tmp_path / "events.csv"
    data.write_text("user_id,ts,type,item_id,price\nu1,2026-03-01 10:00:00,click,i1,2\n"
                    "u2,2026-03-01 10:00:01,click,i1,-4\nu3,2026-03-01 10:00:02,fly,i1,1\n")
    store = str(tmp_path / "s.duckdb")
    ingest = _run("ingest", str(data), "--store", store)
    assert ingest.returncode == 0, ingest.stderr
    row = next(line for line in ingest.stdout.splitlines() if "events.csv" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:7] == ["events.csv", "events", "3", "1", "2", "0", "0"]
    stats = _run("stats", "--store", store)
    assert stats.returncode == 0 and "`price` must be >= N, got N" in stats.stdout
    assert "events from 2026-03-01 10:00" in stats.stdout
    shown = _run("quarantine", "show", "--reason", "not one of", "--store", store)
    assert shown.returncode == 0 and "'fly'" in shown.stdout and "-4" not in shown.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path):
    missing = _run("ingest", str(tmp_path / "nope.csv"), "--store", str(tmp_path / "s.duckdb"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    no_store = _run("stats", "--store", str(tmp_path / "absent.duckdb"))
    assert no_store.returncode == 2 and "no store at" in no_store.stderr


def test_every_command_has_help():
    for command in (["ingest"], ["stats"], ["quarantine", "show"]):
        shown = _run(*command, "--help")
        assert shown.returncode == 0 and "Usage" in shown.stdout
