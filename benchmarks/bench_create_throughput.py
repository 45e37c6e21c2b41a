"""Copy-generation throughput: the local llama.cpp backend (with its LoRA adapter, and without as the peer) vs
the same model behind llama_cpp.server (the OpenAI-compatible backend), and the prompt cache's hit rate on a re-run
(must be 100 %).

    .venv/bin/python benchmarks/bench_create_throughput.py --refs ../shared/data/advertisegen/copy.jsonl \
        --batch 4 --max-tokens 64 --threads 1
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from adpilot.create.cache import CachedLLM
from adpilot.create.local import LocalLLM
from adpilot.create.lora import adapter_gguf
from adpilot.create.openai_chat import OpenAILLM
from adpilot.create.prompts import CopySpec, build_messages
from adpilot.create.retrieval import CopyPool, read_examples


def batch_prompts(refs: Path, batch: int, k: int) -> list[list[dict[str, str]]]:
    """The first ``batch`` references as 3-shot prompts (shots retrieved leave-one-out)."""
    examples = read_examples(refs)
    pool = CopyPool(k=k).fit(examples)
    prompts = []
    for ex in examples[:batch]:
        shots = [(examples[j].product, examples[j].copy) for j in pool.query(ex.product, exclude_copy=ex.copy)]
        prompts.append(build_messages(ex.product, None, CopySpec(slot="detail"), shots, target_chars=110))
    return prompts


def run(llm, prompts, max_tokens: int, tokenizer: LocalLLM) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    """Seconds, copies and completion tokens for one pass over the batch."""
    started = time.perf_counter()
    texts = [t for i, p in enumerate(prompts) for t in llm.generate(p, n=1, max_tokens=max_tokens, seed=i)]
    seconds = time.perf_counter() - started
    model = tokenizer._llama()
    tokens = sum(len(model.tokenize(t.encode(), add_bos=False)) for t in texts)
    return seconds, len(texts), tokens


def start_server(model: Path, threads: int, adapter: Path | None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lora = [] if adapter is None else ["--lora_path", str(adapter)]
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
                                "127.0.0.1", "--port", str(port), "--n_threads", str(threads), "--n_ctx", "2048",
                                *lora], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("llama_cpp.server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, default=Path("../shared/data/advertisegen/copy.jsonl"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--adapter", default="auto", help="auto | none | an adapter .npz")
    args = parser.parse_args()
    prompts = batch_prompts(args.refs, args.batch, args.k)
    local = LocalLLM(threads=args.threads, context=2048, adapter=args.adapter)
    plain = LocalLLM(threads=args.threads, context=2048, adapter="none")
    local._llama(), plain._llama()  # loading (with an adapter: no mmap, the whole file read) is not generating
    s_plain, copies_plain, tokens_plain = run(plain, prompts, args.max_tokens, plain)
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLLM(local, duckdb.connect(str(Path(tmp) / "cache.duckdb")))
        s_local, copies, tokens = run(cached, prompts, args.max_tokens, local)
        s_again, _, _ = run(cached, prompts, args.max_tokens, local)
        hit_rate = cached.hits / len(prompts)
    adapter = local.adapter_path
    server, url = start_server(local.path, args.threads, None if adapter is None else adapter_gguf(adapter, local.path))
    try:
        http = OpenAILLM(url, timeout=600, max_concurrency=1)  # same repeat penalty as the local default
        s_http, copies_http, tokens_http = run(http, prompts, args.max_tokens, local)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"batch={len(prompts)} prompts, {args.k}-shot, max_tokens={args.max_tokens}, threads={args.threads}")
    print(f"local llama.cpp : {copies / s_local:.3f} copies/s, {tokens / s_local:.1f} tokens/s ({s_local:.1f} s), "
          f"adapter {adapter.name if adapter else 'none'}")
    print(f"  no adapter    : {copies_plain / s_plain:.3f} copies/s, {tokens_plain / s_plain:.1f} tokens/s "
          f"({s_plain:.1f} s); ratio adapter/none tokens/s {(tokens / s_local) / (tokens_plain / s_plain):.2f}")
    print(f"openai->server  : {copies_http / s_http:.3f} copies/s, {tokens_http / s_http:.1f} tokens/s "
          f"({s_http:.1f} s)")
    print(f"ratio server/local tokens/s: {(tokens_http / s_http) / (tokens / s_local):.2f}")
    print(f"re-run from cache: hit rate {hit_rate:.0%} in {s_again:.3f} s "
          f"({s_local / max(s_again, 1e-9):.0f}x faster than generating)")
    print("command: .venv/bin/python benchmarks/bench_create_throughput.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
