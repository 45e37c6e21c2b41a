"""Build the configured :class:`~adpilot.create.base.LLM` from settings (``llm_backend`` and friends)."""

from __future__ import annotations

from pathlib import Path

from adpilot.config import Settings
from adpilot.create.base import DEFAULT_REPEAT_PENALTY, LLM
from adpilot.errors import UserError

BACKENDS = ("local", "openai", "template")


def make_llm(settings: Settings, backend: str | None = None, model_path: Path | None = None,
             repeat_penalty: float = DEFAULT_REPEAT_PENALTY, adapter: str | None = None) -> LLM:
    """``local`` (llama.cpp on ``llm_model_path`` or the default Qwen GGUF, with ``adapter`` or ``llm_adapter``),
    ``openai`` (``openai_base_url``, ``openai_chat_model``) or ``template`` (deterministic, no model).
    ``repeat_penalty`` 1.0 means none."""
    backend = backend or settings.llm_backend
    if backend == "local":
        from adpilot.create.local import LocalLLM

        return LocalLLM(model_path or settings.llm_model_path, threads=settings.llm_threads,
                        context=settings.llm_context, repeat_penalty=repeat_penalty,
                        adapter=adapter or settings.llm_adapter)
    if backend == "openai":
        from adpilot.create.openai_chat import OpenAILLM

        return OpenAILLM(settings.openai_base_url, model=settings.openai_chat_model,
                         api_key=settings.openai_api_key,
                         repeat_penalty=repeat_penalty)
    if backend == "template":
        from adpilot.create.template import TemplateLLM

        return TemplateLLM()
    raise UserError(f"`llm_backend` must be one of {BACKENDS}, got {backend!r}")
