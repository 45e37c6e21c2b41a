"""The top-level command: help is instant and lists the rooms; user errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adpilot.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands() -> None:
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_unknown_command_is_a_clean_error() -> None:
    done = run_cli("no-such-command")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "no-such-command" in done.stderr


def test_bad_setting_is_one_line_naming_it() -> None:
    done = run_cli("demo", "--encoder", "bogus")
    assert done.returncode == 2
    assert "`encoder`" in done.stderr and "Traceback" not in done.stderr


def test_simulate_without_a_demo_folder_says_what_to_run(tmp_path) -> None:
    done = run_cli("simulate", "--home", str(tmp_path))
    assert done.returncode == 2 and "adpilot demo" in done.stderr and "Traceback" not in done.stderr
