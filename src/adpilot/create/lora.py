"""A LoRA adapter for the local model, trained on (brief → copy) pairs with the very prompts the writer sends.

Why: retrieval, prompting and selection left the 0.5B model's copy far from human AdvertiseGen copy (BLEU-4 ~5 vs
the fine-tuned 6B's 8). Fine-tuning the base is impossible (it ships as a quantised GGUF and llama.cpp cannot
train), so :func:`fit_adapter` trains low-rank adapters in torch against the GGUF's own dequantised weights
(:mod:`adpilot.create.decoder`), on each pair's 3-shot retrieval prompt (the shots come from the other pairs, as at
evaluation), with the loss on the copy's tokens only. The adapter ships as a small ``.npz`` beside this module;
:func:`adapter_gguf` writes it once into llama.cpp's adapter GGUF format, which llama.cpp applies on the quantised
base at load time (``Llama(lora_path=…)``).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from adpilot.create.evaluate import REPORTED_PAIRS, compliant_pool, sample_indices, typical_length
from adpilot.create.gguf_header import read_header
from adpilot.create.model import cache_dir, sha256_of
from adpilot.create.prompts import CopySpec, ProductBrief, build_messages
from adpilot.create.retrieval import CopyExample, CopyPool, read_examples
from adpilot.errors import InputFileError, UserError, check_scalar

SHIPPED = Path(__file__).with_name("adapters") / "advertisegen.npz"
"""Trained by ``adpilot creative fit-adapter`` (the file's ``provenance`` names the command and pairs)."""
END_OF_TURN = "<|im_end|>"
ARCHITECTURE = "qwen2"
SPEC = CopySpec(slot="detail")
"""The slot evaluation writes for (AdvertiseGen copy is product-detail prose)."""


@dataclass(frozen=True)
class AdapterConfig:
    """Training settings; the defaults made the shipped adapter."""

    rank: int = 8
    alpha: float = 16.0
    learning_rate: float = 2e-4
    epochs: float = 1.0
    accumulate: int = 4
    k: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        check_scalar(self.rank, "rank", ge=1, le=256)
        check_scalar(self.alpha, "alpha", gt=0)
        check_scalar(self.learning_rate, "learning_rate", gt=0, le=1)
        check_scalar(self.epochs, "epochs", gt=0, le=20)
        check_scalar(self.accumulate, "accumulate", ge=1)
        check_scalar(self.k, "k", ge=0, le=10)


def training_indices(n_refs: int, offset: int, limit: int | None, seed: int = 0) -> list[int]:
    """The pairs at positions ``offset``… of the evaluation's sampled order. Refuses the reported prefix:
    evaluation figures must come from pairs never trained on."""
    if offset < REPORTED_PAIRS:
        raise UserError(f"train on pairs outside the reported prefix: `offset` must be >= {REPORTED_PAIRS}, "
                        f"got {offset}")
    return sample_indices(n_refs, limit or n_refs - offset, seed, offset=offset)


def training_prompts(refs: Sequence[CopyExample], offset: int, limit: int | None, k: int, seed: int = 0,
                     ) -> list[tuple[list[dict[str, str]], str]]:
    """(chat messages, target copy) for the pairs at positions ``offset``… of the evaluation's sampled order, with
    the messages the writer would send: ``k`` shots retrieved from the other compliant pairs, the pool's median
    length as target. Refuses the reported prefix: evaluation figures must come from pairs never trained on."""
    index = CopyPool(k=k).fit(compliant_pool(refs, SPEC))
    target = typical_length(refs)
    return [_prompt(refs[i], index, target, index.query(refs[i].product, k=k, exclude_copy=refs[i].copy))
            for i in training_indices(len(refs), offset, limit, seed)]


def _prompt(ref: CopyExample, index: CopyPool, target: int, shots: Sequence[int],
            ) -> tuple[list[dict[str, str]], str]:
    """The writer's messages for ``ref``'s product with ``index``'s examples ``shots`` as shots, and its copy."""
    examples = [index.examples_[j] for j in shots]
    messages = build_messages(ref.product, None, SPEC, [(s.product, s.copy) for s in examples],
                              target_chars=target)
    return [dict(m) for m in messages], ref.copy


def read_extra(path: Path) -> list[CopyExample]:
    """Pairs of another corpus to train on: JSON lines like the references, or a KOBE / TaoDescribe folder (its
    test split; the title is the brief, the description the copy). Only for training: a KOBE title has several
    descriptions, so leave-one-out evaluation over them would show a sibling of the answer as a shot."""
    if not path.is_dir():
        return read_examples(path)
    from adpilot.datasets.copytext import load_kobe

    return [CopyExample(ProductBrief(title=e.title or ""), e.text) for e in load_kobe(path)]


EXTRA_MATCHES = 10
"""An extra pair's likeness to the training pairs is the mean similarity of its product to their 10 nearest."""


def extra_prompts(extra: Sequence[CopyExample], like: Sequence[CopyExample], limit: int | None, k: int,
                  ) -> list[tuple[list[dict[str, str]], str]]:
    """(messages, target) for the ``limit`` pairs of another corpus whose products read most like ``like``'s
    (:class:`CopyPool` similarity) — more copy of the kind being learned when the reference set is small, e.g.
    KOBE's clothing descriptions beside AdvertiseGen's. Same shape as :func:`training_prompts`: ``k`` shots from
    that corpus's other compliant pairs, never of the same product (a sibling description would be copied, not
    learned from), and its median length as target."""
    if limit is not None:
        check_scalar(limit, "extra_limit", ge=0)
    if not extra or limit == 0:
        return []
    nearest = CopyPool().fit(like)
    likeness = [float(np.sort(nearest.similarities(e.product))[-EXTRA_MATCHES:].mean()) for e in extra]
    chosen = [extra[int(i)] for i in np.argsort(likeness, kind="stable")[::-1][:limit or len(extra)]]
    index = CopyPool(k=k).fit(compliant_pool(extra, SPEC))
    by_title: dict[str, list[int]] = {}
    for j, e in enumerate(index.examples_):
        by_title.setdefault(e.product.title, []).append(j)
    target = typical_length(extra)
    return [_prompt(ref, index, target, index.query(ref.product, k=k, exclude=by_title.get(ref.product.title, [])))
            for ref in chosen]


class ChatTokenizer:
    """The model's own tokenizer and chat template, as llama-cpp-python renders a chat completion's prompt."""

    def __init__(self, model_path: Path) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        template = self._vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{model_path} has no chat template to train against")
        self._format = Jinja2ChatFormatter(template=template, eos_token=END_OF_TURN, bos_token="<|endoftext|>")

    def encode(self, messages: list[dict[str, str]], reply: str) -> tuple[list[int], list[int]]:
        """Token ids of the prompt (ending with the assistant header) and of the reply with its end of turn."""
        prompt = self._format(messages=cast(Any, messages)).prompt
        return (self._vocab.tokenize(prompt.encode("utf-8"), add_bos=False, special=True),
                self._vocab.tokenize((reply + END_OF_TURN).encode("utf-8"), add_bos=False, special=True))


def fit_adapter(model_path: Path, examples: Sequence[tuple[list[int], list[int]]], config: AdapterConfig,
                threads: int = 2, on_step: Callable[[int, int, float], None] | None = None,
                start: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Train the adapters on (prompt ids, reply ids) pairs; the loss is the reply's mean token cross-entropy.
    ``start`` (tensors of a saved adapter of the same rank) continues its training instead of starting afresh.
    bfloat16 activations on AVX-512 CPUs, else float32 (:func:`~adpilot.create.decoder.compute_dtype`), float32
    adapter weights and AdamW, a short warm-up then a linear decay. Returns ``{"<tensor>.lora_a": (r, in),
    "<tensor>.lora_b": (out, r)}``."""
    import torch
    import torch.nn.functional as F

    from adpilot.create.decoder import QwenDecoder, read_gguf

    if not examples:
        raise UserError("no training pairs: widen --limit or lower --offset")
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    weights, settings = read_gguf(model_path)
    decoder = QwenDecoder(weights, settings, rank=config.rank, alpha=config.alpha)
    del weights
    if start is not None:
        check_fits(start, model_path)
        with torch.no_grad():
            for name, layer in decoder.adapters():
                if start[f"{name}.lora_a"].shape != tuple(layer.a.shape):
                    raise UserError(f"the adapter to continue has rank {start[f'{name}.lora_a'].shape[0]}, "
                                    f"not {config.rank}")
                layer.a.copy_(torch.from_numpy(start[f"{name}.lora_a"]))
                layer.b.copy_(torch.from_numpy(start[f"{name}.lora_b"]))
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    order = [i % len(examples) for i in range(max(1, round(len(examples) * config.epochs)))]
    random.Random(config.seed).shuffle(order)
    steps = math.ceil(len(order) / config.accumulate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 5) * max(0.05, 1.0 - step / steps))
    for done, i in enumerate(order, start=1):
        prompt, reply = examples[i]
        ids = torch.tensor([prompt + reply])
        hidden = decoder(ids[:, :-1])[:, len(prompt) - 1:]
        loss = F.cross_entropy(decoder.logits(hidden).float()[0], ids[0, len(prompt):])
        (loss / config.accumulate).backward()
        if done % config.accumulate == 0 or done == len(order):
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
        if on_step is not None:
            on_step(done, len(order), loss.item())
    return {f"{name}.lora_{part}": getattr(layer, part).detach().float().numpy()
            for name, layer in decoder.adapters() for part in ("a", "b")}


SCALE = ".scale"
"""Suffix of each tensor's float32 scales (one per rank component) beside its int8 codes."""


def save_adapter(tensors: dict[str, np.ndarray], config: AdapterConfig, path: Path,
                 provenance: dict[str, Any]) -> Path:
    """Tensors as int8 codes with a float32 scale per rank component — per row of A (r, in), per column of B
    (out, r): largest magnitude = ±127; a quarter of float32's bytes, so the shipped adapter stays a small file —
    plus the config and provenance (JSON), in one ``.npz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"config": asdict(config), "provenance": provenance}, ensure_ascii=False)
    arrays: dict[str, np.ndarray] = {"__meta__": np.array(meta)}
    for name, values in tensors.items():
        wide = np.asarray(values, dtype=np.float32)
        scale = np.abs(wide).max(axis=0 if name.endswith(".lora_b") else 1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        arrays[name] = np.round(wide / scale).astype(np.int8)
        arrays[name + SCALE] = scale.astype(np.float32)
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def _broadcast(scale: np.ndarray) -> np.ndarray:
    """A saved scale shaped to multiply its codes: (rows, 1) or (1, columns); session-13 files kept one per row
    as a flat vector."""
    return scale[:, None] if scale.ndim == 1 else scale


def load_adapter(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors (float32) and metadata of a saved adapter; a file that is not one is an InputFileError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            tensors = {k: data[k].astype(np.float32) * _broadcast(data[k + SCALE]) for k in data.files
                       if k != "__meta__" and not k.endswith(SCALE)}
    except (OSError, ValueError, KeyError) as error:
        raise InputFileError(f"{path} is not an adapter saved by `adpilot creative fit-adapter`: {error}") \
            from error
    if not tensors or any(not k.endswith((".lora_a", ".lora_b")) for k in tensors):
        raise InputFileError(f"{path} holds no LoRA tensors")
    return tensors, meta


def write_adapter_gguf(tensors: dict[str, np.ndarray], alpha: float, path: Path) -> Path:
    """llama.cpp's LoRA adapter GGUF: ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``,
    and per adapted weight ``<name>.lora_a`` (r, in) and ``<name>.lora_b`` (out, r) in float32; llama.cpp adds
    ``alpha / r · B A`` to the weight. Written to a temporary name first: a crash leaves no half file."""
    import gguf

    partial = path.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(partial), ARCHITECTURE)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, np.ascontiguousarray(tensors[name], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return path


def check_fits(tensors: dict[str, np.ndarray], model_path: Path) -> None:
    """Every adapter pair must name a weight of the model with matching shapes. llama.cpp only logs a mismatched
    adapter (llama-cpp-python 0.3.36 then crashes on the first evaluation), so we refuse it first, by name."""
    fields, tensors_of_model = read_header(model_path)
    shapes = {t.name: t.shape for t in tensors_of_model}
    if fields.get("general.architecture") != ARCHITECTURE:
        raise UserError(f"the adapter is for {ARCHITECTURE} models; {model_path} is not one")
    for name in sorted({k.rsplit(".", 1)[0] for k in tensors}):
        a, b = tensors.get(f"{name}.lora_a"), tensors.get(f"{name}.lora_b")
        if a is None or b is None:
            raise UserError(f"the adapter has half a pair for {name}")
        if name not in shapes:
            raise UserError(f"the adapter adapts {name}, which {model_path.name} does not have")
        out_features, in_features = shapes[name]
        if a.ndim != 2 or b.ndim != 2 or a.shape != (b.shape[1], in_features) or b.shape[0] != out_features:
            raise UserError(f"the adapter's {name} is A {a.shape}, B {b.shape}; {model_path.name} needs A (r, "
                            f"{in_features}) and B ({out_features}, r)")


def adapter_gguf(npz: Path, model_path: Path) -> Path:
    """The GGUF of a saved adapter that fits ``model_path``, converted once into the model cache, named by the
    ``.npz``'s sha256 and the model file (name and size): a conversion found there passed :func:`check_fits` and
    is used as it is."""
    if not npz.is_file():
        raise UserError(f"no adapter at {npz}")
    model = f"{model_path.stem}-{model_path.stat().st_size}"
    target = cache_dir() / f"adapter-{npz.stem}-{sha256_of(npz)[:12]}-{model}.gguf"
    if not target.is_file():
        tensors, meta = load_adapter(npz)
        check_fits(tensors, model_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_adapter_gguf(tensors, float(meta["config"]["alpha"]), target)
    return target


def train_command(model_path: Path, refs: Sequence[CopyExample], offset: int, limit: int | None,
                  config: AdapterConfig, out: Path, command: str, threads: int = 2,
                  progress: Callable[[str], None] = print, init: Path | None = None,
                  extra: Sequence[CopyExample] = (), extra_limit: int | None = None) -> Path:
    """Everything ``fit-adapter`` does: prompts (with :func:`extra_prompts` from ``extra``), tokens, training
    (continuing ``init`` if given), and the file with its provenance (which keeps ``init``'s)."""
    start, earlier = load_adapter(init) if init is not None else (None, {})
    tokenizer = ChatTokenizer(model_path)
    own = training_prompts(refs, offset, limit, config.k, config.seed)
    trained = [refs[i] for i in training_indices(len(refs), offset, limit, config.seed)]
    more = extra_prompts(extra, trained, extra_limit, config.k)
    examples = [tokenizer.encode(m, reply) for m, reply in own + more]
    started = time.monotonic()
    losses: list[float] = []

    def on_step(done: int, total: int, loss: float) -> None:
        losses.append(loss)
        if done % 20 == 0 or done == total:
            progress(f"{done}/{total} loss {np.mean(losses[-20:]):.3f} {time.monotonic() - started:.0f} s")

    tensors = fit_adapter(model_path, examples, config, threads=threads, on_step=on_step, start=start)
    provenance = {"command": command, "pairs": len(own), "extra_pairs": len(more), "offset": offset,
                  "positions": f"{offset}..{offset + len(own) - 1} of the seed-{config.seed} order",
                  "model_sha256": sha256_of(model_path),
                  "first_loss": float(np.mean(losses[:20])), "last_loss": float(np.mean(losses[-20:])),
                  "seconds": round(time.monotonic() - started)}
    if init is not None:
        provenance["continues"] = earlier.get("provenance", {})
    return save_adapter(tensors, config, out, provenance)
