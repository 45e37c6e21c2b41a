"""Fixtures every room's tests share: test-mode settings and the shared public data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ADPILOT_MODE", "test")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``$ADPILOT_SHARED_DATA`` (default ``../shared/data``); the test skips when it is absent."""
    root = Path(os.environ.get("ADPILOT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} is absent")
    return root.resolve()
