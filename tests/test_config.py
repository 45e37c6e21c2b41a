"""Settings refuse the public default secret outside tests and the demo."""

from __future__ import annotations

import pytest

from adpilot.config import DEV_SECRET, Settings, SettingsError


def test_default_secret_refused_in_prod() -> None:
    with pytest.raises(SettingsError, match="ADPILOT_SECRET"):
        Settings(mode="prod").require_production_secrets()


def test_private_secret_accepted_in_prod() -> None:
    Settings(mode="prod", secret="x" * 32, token_secret="y" * 32, admin_api_key="z" * 32).require_production_secrets()


@pytest.mark.parametrize("mode", ["test", "demo"])
def test_default_secret_allowed_in_test_and_demo(mode: str) -> None:
    Settings(mode=mode, secret=DEV_SECRET).require_production_secrets()
