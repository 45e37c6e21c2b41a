"""One typed settings object for every room: paths, secrets, model choices.

Values come from environment variables prefixed ``ADPILOT_`` (``ADPILOT_STORE_PATH``...) or from an
``adpilot.env`` file in the working directory. Secrets have development defaults so that tests and the demo run
on a fresh clone; :meth:`Settings.require_production_secrets` refuses those defaults anywhere else.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "adpilot-dev-secret-change-me"

Mode = Literal["prod", "test", "demo"]


class SettingsError(ValueError):
    """A setting is missing or unsafe; the message names the variable to set."""


class Settings(BaseSettings):
    """Everything configurable in adpilot, read once at the edges and passed down explicitly."""

    model_config = SettingsConfigDict(env_prefix="ADPILOT_", env_file="adpilot.env", extra="ignore", frozen=True)

    mode: Mode = "prod"
    home: Path = Path("data")
    store_path: Path | None = None
    secret: str = DEV_SECRET
    token_secret: str = DEV_SECRET
    admin_api_key: str = DEV_SECRET
    shared_data: Path = Path("../shared/data")

    encoder: Literal["e5", "use", "openai"] = "e5"
    encoder_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str = "none"
    openai_embedding_model: str = "default"
    openai_chat_model: str = "default"

    llm_backend: Literal["local", "openai", "template"] = "local"
    llm_model_path: Path | None = None
    llm_adapter: str = "auto"
    llm_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    llm_context: int = Field(default=2048, ge=256)

    scorer_path: Path | None = None
    redis_url: str | None = None
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(default=8000, ge=1, le=65535)
    serve_workers: int = Field(default=1, ge=1)
    serve_max_inflight: int = Field(default=64, ge=1)

    @property
    def resolved_store_path(self) -> Path:
        """The DuckDB file: ``store_path`` if set, else ``home/adpilot.duckdb``."""
        return self.store_path if self.store_path is not None else self.home / "adpilot.duckdb"

    def require_production_secrets(self) -> None:
        """Refuse to pseudonymise or sign with the public default secret outside tests and the demo."""
        if self.mode in ("test", "demo"):
            return
        for name in ("secret", "token_secret", "admin_api_key"):
            value = getattr(self, name)
            if value == DEV_SECRET or len(value) < 16:
                raise SettingsError(
                    f"ADPILOT_{name.upper()} must be set to a private value of at least 16 characters "
                    f"in mode '{self.mode}' (the default is public)"
                )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
