"""The LoRA adapter path end to end on the real model: the torch decoder agrees with llama.cpp, an adapter written
as GGUF changes llama.cpp's next-token distribution exactly as it changes the decoder's, training lowers the loss,
and bad adapters are refused with clear errors. Skipped when the model wheels are absent."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from create_helpers import local_model_available

from adpilot.create.evaluate import REPORTED_PAIRS, sample_indices
from adpilot.create.local import LocalLLM
from adpilot.create.lora import (
    AdapterConfig,
    ChatTokenizer,
    adapter_gguf,
    extra_prompts,
    fit_adapter,
    load_adapter,
    read_extra,
    save_adapter,
    training_prompts,
    write_adapter_gguf,
)
from adpilot.create.model import default_model_path
from adpilot.create.prompts import ProductBrief
from adpilot.create.retrieval import CopyExample
from adpilot.errors import InputFileError, UserError

pytestmark = [pytest.mark.llm, pytest.mark.skipif(not local_model_available(),
                                                  reason="llama-cpp-python or the model wheels are not installed")]
TEXT = "<|im_start|>user\n类型#裙*颜色#白色*风格#清新<|im_end|>\n<|im_start|>assistant\n这款连衣裙采用白色"


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    p, q = _log_softmax(p_logits.astype(np.float64)), _log_softmax(q_logits.astype(np.float64))
    return float((np.exp(p) * (p - q)).sum(axis=1).mean())


def _llama_logits(adapter: Path | None) -> tuple[list[int], np.ndarray]:
    from llama_cpp import Llama

    model = Llama(model_path=str(default_model_path()), n_ctx=128, n_threads=1, logits_all=True, verbose=False,
                  lora_path=None if adapter is None else str(adapter))
    tokens = model.tokenize(TEXT.encode(), add_bos=False, special=True)
    model.eval(tokens)
    return tokens, np.asarray(model.scores[: len(tokens)])


@pytest.fixture(scope="module")
def decoder():  # type: ignore[no-untyped-def]
    import torch

    from adpilot.create.decoder import QwenDecoder, read_gguf

    weights, config = read_gguf(default_model_path())  # type: ignore[arg-type]
    return QwenDecoder(weights, config, dtype=torch.float32)


def _references(n: int) -> list[CopyExample]:
    colours = ["白色", "黑色", "红色", "蓝色", "灰色"]
    return [CopyExample(ProductBrief.from_advertisegen(f"类型#裙*颜色#{colours[i % 5]}*款号#{i}"),
                        f"这款{colours[i % 5]}连衣裙是第{i}款，简约大方，通勤约会都合适。") for i in range(n)]


def test_adapter_changes_llama_cpp_as_it_changes_the_decoder(decoder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    rng = np.random.default_rng(0)
    tensors = {}
    for name, layer in decoder.adapters():
        if name.startswith(("blk.3.", "blk.17.")):
            out_features, in_features = layer.weight.shape
            tensors[f"{name}.lora_a"] = rng.normal(0, 0.05, (4, in_features)).astype(np.float32)
            tensors[f"{name}.lora_b"] = rng.normal(0, 0.05, (out_features, 4)).astype(np.float32)
    tokens, base_cpp = _llama_logits(None)
    _, adapted_cpp = _llama_logits(write_adapter_gguf(tensors, 4.0, tmp_path / "a.gguf"))
    ids = torch.tensor([tokens])
    with torch.no_grad():
        base = decoder.logits(decoder(ids))[0].numpy()
        for name, layer in decoder.adapters():
            if f"{name}.lora_a" in tensors:
                layer.a.set_(torch.from_numpy(tensors[f"{name}.lora_a"]))
                layer.b.set_(torch.from_numpy(tensors[f"{name}.lora_b"]))
                layer.scale = 1.0  # alpha 4 / rank 4
        adapted = decoder.logits(decoder(ids))[0].numpy()
    assert (base.argmax(1) == base_cpp.argmax(1)).mean() >= 0.9
    assert _kl(base_cpp, base) < 0.01  # llama.cpp quantises activations too: ~0.002
    moved = _kl(adapted_cpp, base_cpp)
    print(f"KL base {_kl(base_cpp, base):.4f} adapted {_kl(adapted_cpp, adapted):.4f} moved {moved:.4f}")
    assert moved > 0.05  # the adapter really moved llama.cpp's distribution …
    assert _kl(adapted_cpp, adapted) < 0.2 * moved  # … the way it moved the decoder's (a transposed A or B fails)


def test_training_lowers_the_reply_loss_and_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = default_model_path()
    assert path is not None
    tokenizer = ChatTokenizer(path)
    messages = [{"role": "user", "content": "类型#裙*颜色#白色"}]
    examples = [tokenizer.encode(messages, "这款白色连衣裙清新甜美。")]
    prompt, reply = examples[0]
    end_of_turn = tokenizer.encode(messages, "")[1]
    assert len(end_of_turn) == 1 and reply[-1] == end_of_turn[0]  # one special token, not its spelling
    losses: list[float] = []
    config = AdapterConfig(rank=2, alpha=4.0, learning_rate=5e-3, epochs=6, accumulate=1)
    tensors = fit_adapter(path, examples, config, threads=1, on_step=lambda _d, _t, loss: losses.append(loss))
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5
    resumed: list[float] = []
    fit_adapter(path, examples, AdapterConfig(rank=2, alpha=4.0, learning_rate=1e-9, epochs=1, accumulate=1),
                threads=1, on_step=lambda _d, _t, loss: resumed.append(loss), start=tensors)
    assert resumed[0] < losses[0] - 0.5  # continued from the trained adapter, not afresh
    assert tensors["blk.0.attn_q.weight.lora_a"].shape == (2, 896)
    assert tensors["blk.0.attn_k.weight.lora_b"].shape == (128, 2)
    saved = save_adapter(tensors, config, tmp_path / "tiny.npz", {"command": "test"})
    loaded, meta = load_adapter(saved)
    assert meta["config"]["rank"] == 2 and set(loaded) == set(tensors)
    np.testing.assert_allclose(loaded["blk.5.ffn_up.weight.lora_b"], tensors["blk.5.ffn_up.weight.lora_b"],
                               atol=1e-3)


def test_converted_once_and_used_by_the_local_backend(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ADPILOT_MODEL_CACHE", str(tmp_path / "cache"))
    tensors = {"blk.0.attn_q.weight.lora_a": np.zeros((2, 896), np.float32),
               "blk.0.attn_q.weight.lora_b": np.zeros((896, 2), np.float32)}
    npz = save_adapter(tensors, AdapterConfig(rank=2), tmp_path / "zero.npz", {})
    model = default_model_path()
    assert model is not None
    first = adapter_gguf(npz, model)
    assert first.parent == tmp_path / "cache" and adapter_gguf(npz, model) == first
    with monkeypatch.context() as patched:  # a cached conversion passed the check: the model header is not re-read
        patched.setattr("adpilot.create.lora.check_fits", lambda *_: pytest.fail("checked again"))
        assert adapter_gguf(npz, model) == first
    plain = LocalLLM(model, threads=1, context=256, adapter="none")
    zero = LocalLLM(model, threads=1, context=256, adapter=str(npz))
    assert "+zero-" in zero.name and "+" not in plain.name
    messages = [{"role": "user", "content": "写一句白色连衣裙的广告。"}]
    assert zero.generate(messages, max_tokens=12, temperature=0.0) == \
        plain.generate(messages, max_tokens=12, temperature=0.0)  # B = 0: the adapter adds nothing


def test_bad_adapters_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="not an adapter"):
        load_adapter(junk)
    with pytest.raises(UserError, match="does not exist"):
        LocalLLM(default_model_path(), adapter=str(tmp_path / "missing.npz")).generate([{"role": "user",
                                                                                         "content": "hi"}])
    wrong = {"blk.0.attn_q.weight.lora_a": np.zeros((2, 100), np.float32),
             "blk.0.attn_q.weight.lora_b": np.zeros((896, 2), np.float32)}
    npz = save_adapter(wrong, AdapterConfig(rank=2), tmp_path / "wrong.npz", {})
    with pytest.raises(UserError, match=r"A \(2, 100\), B \(896, 2\); .* needs A \(r, 896\)"):
        LocalLLM(default_model_path(), threads=1, context=256, adapter=str(npz)).generate(
            [{"role": "user", "content": "hi"}], max_tokens=2)
    unknown = {"blk.99.attn_q.weight.lora_a": np.zeros((2, 896), np.float32),
               "blk.99.attn_q.weight.lora_b": np.zeros((896, 2), np.float32)}
    with pytest.raises(UserError, match="does not have"):
        adapter_gguf(save_adapter(unknown, AdapterConfig(rank=2), tmp_path / "unknown.npz", {}),
                     default_model_path())  # type: ignore[arg-type]


def test_training_prompts_keep_the_reported_prefix_out() -> None:
    refs = _references(60)
    with pytest.raises(UserError, match="reported prefix"):
        training_prompts(refs, REPORTED_PAIRS - 1, None, k=3)
    prompts = training_prompts(refs, REPORTED_PAIRS, None, k=3)
    positions = sample_indices(len(refs), len(refs) - REPORTED_PAIRS, 0, offset=REPORTED_PAIRS)
    assert [copy for _, copy in prompts] == [refs[i].copy for i in positions]
    for messages, copy in prompts:
        shots = [m["content"] for m in messages if m["role"] == "assistant"]
        assert len(shots) == 3 and copy not in shots  # shots are other pairs, never the target


def test_extra_prompts_take_the_likest_pairs_and_never_a_sibling_as_shot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "kobe"
    folder.mkdir()
    titles = ["白色连衣裙女夏", "白色连衣裙女夏", "黑色连衣裙女秋", "红色连衣裙女春", "专业级小提琴", "不锈钢炒锅"]
    with gzip.open(folder / "test.src.str.gz", "wt", encoding="utf-8") as src, \
            gzip.open(folder / "test.tgt.str.gz", "wt", encoding="utf-8") as tgt:
        for i, title in enumerate(titles):
            src.write(f"<{i % 3}> <a> {' '.join(title)}\n")
            tgt.write(" ".join(f"这件用料讲究，做工细致，第{i}段描述。") + "\n")
    extra = read_extra(folder)
    assert [e.product.title for e in extra] == titles and extra[0].copy == "这件用料讲究，做工细致，第0段描述。"
    prompts = extra_prompts(extra, _references(20), limit=4, k=2)
    chosen = [messages[-1]["content"] for messages, _ in prompts]
    assert len(chosen) == 4 and not {"商品：专业级小提琴", "商品：不锈钢炒锅"} & set(chosen)  # the dresses
    for messages, copy in prompts:
        asked = messages[-1]["content"]
        shown = [m["content"] for m in messages if m["role"] == "user"][:-1]
        assert len(shown) == 2 and asked not in shown  # never the same product (its sibling copy) as a shot
        assert copy not in [m["content"] for m in messages if m["role"] == "assistant"]
    assert extra_prompts(extra, _references(20), limit=0, k=2) == []
    with pytest.raises(ValueError, match="extra_limit"):
        extra_prompts(extra, _references(20), limit=-1, k=2)


def test_adapters_saved_with_a_scale_per_row_still_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = "blk.0.attn_q.weight.lora_b"
    np.savez(tmp_path / "session13.npz", __meta__=np.array('{"config": {}, "provenance": {}}'),
             **{name: np.array([[127, -64], [10, 127]], dtype=np.int8),
                name + ".scale": np.array([0.5, 2.0], dtype=np.float32)})
    tensors, _ = load_adapter(tmp_path / "session13.npz")
    np.testing.assert_allclose(tensors[name], [[63.5, -32.0], [20.0, 254.0]])
    saved = save_adapter({name: tensors[name]}, AdapterConfig(rank=2), tmp_path / "now.npz", {})
    with np.load(saved) as data:
        assert data[name + ".scale"].shape == (1, 2)  # one scale per rank component (a column of B)
    np.testing.assert_allclose(load_adapter(saved)[0][name], tensors[name], rtol=0.01, atol=1.0)
