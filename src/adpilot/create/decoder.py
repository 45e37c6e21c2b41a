"""The Qwen2 decoder in torch over a GGUF's own (dequantised) weights, with low-rank adapters to train.

llama.cpp runs the model but has no backward pass, and the default model ships only as a quantised GGUF. So we
dequantise that GGUF and train LoRA adapters against exactly the weights llama.cpp will add them to: the trained
adapter, written back as a llama.cpp adapter GGUF (:mod:`adpilot.create.lora`), meets the same base at serving
time. The forward pass follows llama.cpp's ``qwen2`` graph (RMSNorm, NeoX rotary embeddings, grouped-query
attention with q/k/v biases, SwiGLU); its next-token choices agree with llama.cpp's on the tested prompt.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adpilot.create.gguf_header import GGUFTensor, read_header
from adpilot.errors import UserError

TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
"""Every linear map of a block gets an adapter (llama.cpp's tensor names)."""


def compute_dtype() -> torch.dtype:
    """bfloat16 where PyTorch runs AVX-512 kernels (~2× faster than float32 there), else float32: without them
    bfloat16 matmuls are emulated, ~16× slower than float32 (two forward and backward passes of the 0.5B model,
    60 tokens: 85.7 s vs 5.4 s on an AVX2 CPU, session 24)."""
    return torch.bfloat16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else torch.float32


@functools.cache
def _ggml() -> ctypes.CDLL | None:
    """The ``libggml-base`` llama-cpp-python ships (``None`` without it)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    path = Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"
    return ctypes.CDLL(str(path)) if path.exists() else None


@functools.cache
def c_dequantizer(kind: str) -> Any | None:
    """llama.cpp's ``dequantize_row_<kind>(blocks, out, n)`` for a ggml type name (``Q4_K``), or ``None``; looked up
    and typed once per type, not once per tensor."""
    symbol = "dequantize_row_" + (kind[:-1].lower() + "K" if kind.endswith("_K") else kind.lower())
    routine = getattr(_ggml(), symbol, None)
    if routine is not None:
        routine.argtypes, routine.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64], None
    return routine


def dequantize(tensor: GGUFTensor) -> np.ndarray:
    """A GGUF tensor as a new flat float32 array, by llama.cpp's own C routine
    (``dequantize_row_<type>``) where the library has one: bit-identical to gguf-py's numpy dequantisation and
    5–30× faster (the 136M-weight Q5_0 embedding table 4.6 s vs 21.3 s). gguf-py's otherwise (F32, F16, no
    library)."""
    import gguf

    kind = tensor.tensor_type.name
    routine = c_dequantizer(kind)
    if routine is None:
        return np.array(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(-1)
    source = np.ascontiguousarray(tensor.data)
    values = np.empty(int(tensor.n_elements), dtype=np.float32)
    block, size = gguf.GGML_QUANT_SIZES[tensor.tensor_type]
    if values.size % block or source.nbytes != values.size // block * size:  # the C routine would read past it
        raise UserError(f"GGUF tensor {tensor.name} holds {source.nbytes} bytes; {values.size} {kind} weights "
                        f"need {-(-values.size // block) * size}: the model file is damaged")
    routine(source.ctypes.data, values.ctypes.data, values.size)
    return values


def read_gguf(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors dequantised to float32 in torch layout ((out, in) for weights), and the ``qwen2.*`` settings."""
    fields, tensors = read_header(path)
    architecture = fields.get("general.architecture")
    if architecture != "qwen2":
        raise UserError(f"adapters can be trained for qwen2 models only; {path} is {architecture!r}")
    weights = {t.name: torch.from_numpy(dequantize(t).reshape(t.shape)) for t in tensors}
    return weights, {key.removeprefix("qwen2."): value for key, value in fields.items() if key.startswith("qwen2.")}


@dataclass(frozen=True)
class Shape:
    """The attention geometry and norm epsilon every block shares."""

    heads: int
    kv_heads: int
    head_dim: int
    eps: float


def rms_norm(x: torch.Tensor, gain: torch.Tensor, eps: float) -> torch.Tensor:
    wide = x.float()
    return (wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * gain


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)


class LoraLinear(nn.Module):
    """``x W^T + b`` with a frozen ``W`` plus the trainable low-rank ``(alpha / r) x A^T B^T``; ``B`` starts at zero,
    so an untrained adapter changes nothing."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, rank: int, alpha: float) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        out_features, in_features = weight.shape
        self.a = nn.Parameter(torch.randn(rank, in_features) / math.sqrt(in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low_rank = (x @ self.a.t().to(x.dtype)) @ self.b.t().to(x.dtype)
        return F.linear(x, self.weight, self.bias) + low_rank * self.scale


class Block(nn.Module):
    """One decoder block: attention and feed-forward, each behind an RMSNorm and a residual."""

    attn_norm: torch.Tensor
    ffn_norm: torch.Tensor

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, shape: Shape, rank: int, alpha: float,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.shape = shape
        self.register_buffer("attn_norm", weights[prefix + "attn_norm.weight"].to(dtype), persistent=False)
        self.register_buffer("ffn_norm", weights[prefix + "ffn_norm.weight"].to(dtype), persistent=False)
        self.maps = nn.ModuleDict({name: LoraLinear(
            weights[f"{prefix}{name}.weight"].to(dtype),
            None if f"{prefix}{name}.bias" not in weights else weights[f"{prefix}{name}.bias"].to(dtype),
            rank, alpha) for name in TARGETS})

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, length, _ = h.shape
        shape, maps = self.shape, self.maps
        x = rms_norm(h, self.attn_norm, shape.eps)
        q = maps["attn_q"](x).view(batch, length, shape.heads, shape.head_dim).transpose(1, 2)
        k = maps["attn_k"](x).view(batch, length, shape.kv_heads, shape.head_dim).transpose(1, 2)
        v = maps["attn_v"](x).view(batch, length, shape.kv_heads, shape.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        group = shape.heads // shape.kv_heads
        attended = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                                  is_causal=True)
        h = h + maps["attn_output"](attended.transpose(1, 2).reshape(batch, length, -1))
        x = rms_norm(h, self.ffn_norm, shape.eps)
        return h + maps["ffn_down"](F.silu(maps["ffn_gate"](x)) * maps["ffn_up"](x))


class QwenDecoder(nn.Module):
    """Hidden states and logits for token ids of shape (batch, time); only the adapters' ``a``/``b`` train."""

    embedding: torch.Tensor
    output: torch.Tensor
    norm: torch.Tensor

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, Any], rank: int = 8,
                 alpha: float = 16.0, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        heads = int(config["attention.head_count"])
        self.shape = Shape(heads=heads, kv_heads=int(config["attention.head_count_kv"]),
                           head_dim=int(config["embedding_length"]) // heads,
                           eps=float(config["attention.layer_norm_rms_epsilon"]))
        self.rope_base = float(config["rope.freq_base"])
        self.dtype = dtype = dtype or compute_dtype()
        self.register_buffer("embedding", weights["token_embd.weight"].to(dtype), persistent=False)
        output = weights.get("output.weight", weights["token_embd.weight"])  # tied embeddings when absent
        self.register_buffer("output", output.to(dtype), persistent=False)
        self.register_buffer("norm", weights["output_norm.weight"].to(dtype), persistent=False)
        self.blocks = nn.ModuleList(Block(weights, f"blk.{i}.", self.shape, rank, alpha, dtype)
                                    for i in range(int(config["block_count"])))

    def adapters(self) -> Iterator[tuple[str, LoraLinear]]:
        """(llama.cpp tensor name, adapter) for every adapted weight."""
        for i, block in enumerate(self.blocks):
            for name, layer in cast(Block, block).maps.items():
                yield f"blk.{i}.{name}.weight", cast(LoraLinear, layer)

    def _rotary(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """NeoX rotary tables (llama.cpp's rope type for qwen2: halves rotated, not interleaved pairs)."""
        head_dim = self.shape.head_dim
        inverse = self.rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(length, dtype=torch.float32), inverse).repeat(1, 2)
        return angles.cos().to(self.dtype), angles.sin().to(self.dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states (batch, time, width) under causal attention."""
        h = self.embedding[ids]
        cos, sin = self._rotary(ids.shape[1])
        for block in self.blocks:
            h = block(h, cos, sin)
        return rms_norm(h, self.norm, self.shape.eps)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.output.t()
