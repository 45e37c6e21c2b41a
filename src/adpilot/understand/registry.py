"""Encoder names -> constructors, so that a new encoder is added by registering it, not by editing callers."""

from __future__ import annotations

from collections.abc import Callable

from adpilot.config import Settings
from adpilot.errors import UserError
from adpilot.understand.base import TextEncoder
from adpilot.understand.encoders import E5Encoder, USEEncoder
from adpilot.understand.openai_encoder import OpenAIEncoder

ENCODERS: dict[str, Callable[[Settings], TextEncoder]] = {
    "e5": lambda s: E5Encoder(threads=s.encoder_threads),
    "use": lambda s: USEEncoder(threads=s.encoder_threads),
    "openai": lambda s: OpenAIEncoder(s.openai_base_url, model=s.openai_embedding_model, api_key=s.openai_api_key),
}


def get_encoder(name: str | None = None, settings: Settings | None = None) -> TextEncoder:
    """The encoder called ``name`` (default: ``settings.encoder``), configured from ``settings``.

    >>> get_encoder("use", Settings()).dim
    512
    """
    settings = settings if settings is not None else Settings()
    name = name or settings.encoder
    if name not in ENCODERS:
        raise UserError(f"`encoder` must be one of {sorted(ENCODERS)}, got {name!r}")
    return ENCODERS[name](settings)
