"""``adpilot train ctr`` / ``adpilot eval ctr`` end to end on a slice of a real file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _adpilot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adpilot.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def slices(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    lines = (shared_data / "talkingdata_adtracking/clicks.csv").read_text().splitlines()
    folder = tmp_path_factory.mktemp("td")
    train, test = folder / "train.csv", folder / "test.csv"
    train.write_text("\n".join(lines[:20001]) + "\n")
    test.write_text("\n".join([lines[0], *lines[60001:70001]]) + "\n")
    return train, test


def test_train_then_eval_prints_intervals(slices, tmp_path):
    train, test = slices
    out = tmp_path / "lr.npz"
    done = _adpilot("train", "ctr", "--train", str(train), "--model", "lr", "--epochs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "valid ECE" in done.stdout and out.is_file()
    done = _adpilot("eval", "ctr", "--model", str(out), "--test", str(test), "--n-boot", "20")
    assert done.returncode == 0, done.stderr
    auc_line = next(line for line in done.stdout.splitlines() if line.strip().startswith("auc"))
    value, low, high = (float(x) for x in auc_line.replace("[", " ").replace("]", " ").replace(",", " ").split()[1:4])
    assert low <= value <= high and value > 0.75


def test_user_mistakes_are_one_line(tmp_path):
    done = _adpilot("train", "ctr", "--train", str(tmp_path / "absent.csv"))
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr
