"""The world's configuration: sizes, period and seed. Everything else follows from it deterministically."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from adpilot.datasets.world.vocab import LEAVES
from adpilot.errors import UserError, check_scalar

GENERATOR_VERSION = 1
"""Bumped whenever the same config would generate a different world; stored worlds record it."""


def _check(value: float, name: str, **bounds: float) -> None:
    try:
        check_scalar(value, name, **bounds)
    except ValueError as error:
        raise UserError(str(error)) from None


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and seed of a synthetic world.

    ``n_products`` defaults to ``clip(n_users // 16, 300, 100_000)``. ``start`` is the first day (UTC midnight).
    """

    n_users: int = 5_000
    n_events: int = 200_000
    seed: int = 0
    n_days: int = 30
    n_products: int | None = None
    bot_share: float = 0.01
    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __post_init__(self) -> None:
        _check(self.n_users, "n_users", ge=10)
        _check(self.n_events, "n_events", ge=0)
        _check(self.n_days, "n_days", ge=1, le=3650)
        _check(self.bot_share, "bot_share", ge=0, lt=0.5)
        if self.n_products is not None:
            _check(self.n_products, "n_products", ge=len(LEAVES))
        if self.start.tzinfo is None:
            raise UserError("`start` must be timezone-aware")

    @property
    def products(self) -> int:
        """The resolved number of products."""
        return self.n_products if self.n_products is not None else int(min(max(self.n_users // 16, 300), 100_000))

    def to_json(self) -> str:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["generator_version"] = GENERATOR_VERSION
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> WorldConfig:
        data = json.loads(text)
        version = data.pop("generator_version", None)
        if version != GENERATOR_VERSION:
            raise UserError(f"this world was written by generator version {version}, this adpilot has "
                            f"{GENERATOR_VERSION}: regenerate it with `adpilot world`")
        data["start"] = datetime.fromisoformat(data["start"])
        return cls(**data)
