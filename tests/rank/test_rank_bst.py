"""BST (issue #4): the history transformer masks padding, the numpy forward is the torch one, and a request's
history is encoded once whatever the candidates."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from adpilot.errors import UserError
from adpilot.rank.estimator import CTRModel
from adpilot.rank.layers import HistoryTransformer
from adpilot.rank.npforward import NumpyModel
from adpilot.rank.scorer import load_scorer
from adpilot.rank.trainer import tensors


def _layer_and_numpy(dim: int = 8, heads: int = 2) -> tuple[HistoryTransformer, NumpyModel]:
    """A random layer (recency embeddings scaled up so positions matter) and a numpy model holding its weights."""
    torch.manual_seed(0)
    layer = HistoryTransformer(dim, max_len=6, heads=heads, ffn_hidden=12).eval()
    with torch.no_grad():
        layer.position.weight.mul_(50)
    weights = {f"attention.{k}": v.numpy() for k, v in layer.state_dict().items()}
    weights |= {"inputs.embedding.weight": np.zeros((2, dim), np.float32),
                "inputs.weight.weight": np.zeros((2, 1), np.float32)}
    return layer, NumpyModel("bst", weights, (0,), (), 1, 0)


def _packed(lengths: list[int], dim: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(len(lengths), dim, generator=gen)
    keys = torch.randn(sum(lengths), dim, generator=gen)
    rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return query, keys, rows


def test_padding_is_masked_and_numpy_equals_torch() -> None:
    """Rows of histories of different lengths (one empty) give what each row gives alone, where the batch pads it
    to the longest; numpy, padded to a longer length still, gives the same numbers; an empty history gives zeros."""
    layer, model = _layer_and_numpy()
    lengths = [3, 5, 0, 1]
    query, keys, rows = _packed(lengths, 8)
    with torch.no_grad():
        together = layer(query, keys, rows)
        alone = [layer(query[i:i + 1], keys[rows == i], torch.zeros(int((rows == i).sum()), dtype=torch.long))
                 for i in range(len(lengths))]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-6, rtol=1e-5)
    assert together[2].abs().sum() == 0

    padded_len = 6  # longer than any history: padding the batch never attends to
    items = np.zeros((len(lengths), padded_len, 8), np.float32)
    valid = np.arange(padded_len) < np.array(lengths)[:, None]
    items[valid] = keys.numpy()
    items[~valid] = 7.0  # whatever sits in the padding
    np.testing.assert_allclose(model._attend_bst(query.numpy(), items, valid), together.numpy(), atol=1e-6)
    for i in range(len(lengths)):  # the serving path: one history shared by the candidates, padding dropped
        shared = model._attend_bst(query.numpy(), items[i:i + 1], valid[i:i + 1])
        with torch.no_grad():
            expected = layer(query, keys[rows == i].repeat(len(lengths), 1),
                             torch.arange(len(lengths)).repeat_interleave(lengths[i]))
        np.testing.assert_allclose(shared, expected.numpy(), atol=1e-6)


def test_length_buckets_equal_one_padded_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows padded per bucket of similar history length give the outputs and the gradients of one block padded
    to the longest history (the layout before buckets), whatever order the buckets put the positions in."""
    layer, _ = _layer_and_numpy()
    query, keys, rows = _packed([2, 9, 0, 17, 4, 33, 1, 5], 8)
    upstream = torch.randn(query.shape, generator=torch.Generator().manual_seed(2))

    def run() -> tuple[torch.Tensor, ...]:
        layer.zero_grad()
        q, k = query.clone().requires_grad_(True), keys.clone().requires_grad_(True)
        out = layer(q, k, rows)
        (out * upstream).sum().backward()
        return out.detach(), q.grad, k.grad, layer.qkv.weight.grad.clone(), layer.position.weight.grad.clone()

    bucketed = run()
    assert len(HistoryTransformer.LENGTH_BUCKETS) > 2
    monkeypatch.setattr(HistoryTransformer, "LENGTH_BUCKETS", (1000,))
    for ours, single in zip(bucketed, run(), strict=True):
        torch.testing.assert_close(ours, single, atol=1e-5, rtol=1e-4)


def test_recency_and_order_matter() -> None:
    """The positional (recency) embedding makes the encoding depend on the order of the history."""
    layer, _ = _layer_and_numpy()
    query, keys, rows = _packed([4], 8)
    with torch.no_grad():
        forward, backward = layer(query, keys, rows), layer(query, keys.flip(0), rows)
    assert (forward - backward).abs().max() > 1e-3


def test_model_scores_ignore_padding_and_other_candidates(frame: pd.DataFrame, tmp_path) -> None:
    """A trained bst: longer padding in the inputs leaves the logits alone (torch and numpy), and a candidate's
    score in a request does not depend on which other candidates come with it."""
    model = CTRModel("bst", labels=("click",), epochs=2, batch_size=64, embedding_dim=8, hidden=(16,),
                     max_buckets=256, max_seq_len=8, learning_rate=0.01).fit(frame.iloc[:450], frame.iloc[450:])
    enc = model.encoder_.encode(frame.iloc[:50])
    wider = type(enc)(enc.ids, np.concatenate([enc.seqs, np.zeros_like(enc.seqs)], axis=2), enc.dense, enc.vectors)
    with torch.no_grad():
        logits = model.module_(*tensors(enc)).numpy()
        np.testing.assert_allclose(model.module_(*tensors(wider)).numpy(), logits, atol=1e-6)
    scorer = load_scorer(model.save(tmp_path / "bst"))
    np.testing.assert_allclose(scorer.model.logits(wider), logits, atol=1e-6)

    rows = frame.iloc[:30]
    ads = {c: rows[c].to_numpy() for c in ("item_id", "cate", "price")} | {"ad_vec": np.stack(rows["ad_vec"])}
    user = {"hist_item_id": [3, 7, 11, 3], "hist_cate": [3, 2, 1, 3]}
    pctr, _ = scorer.score(user, ads, {"slot": "top"})
    few, _ = scorer.score(user, {c: v[5:9] for c, v in ads.items()}, {"slot": "top"})
    np.testing.assert_allclose(few, pctr[5:9], rtol=1e-6)


def test_bad_configurations_are_named(frame: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="behaviour sequence"):
        CTRModel("bst", labels=("click",), epochs=1).fit(frame.drop(columns=["hist_item_id", "hist_cate"]))
    with pytest.raises(UserError, match="`attention_heads`"):
        CTRModel("bst", labels=("click",), epochs=1, embedding_dim=8, attention_heads=3).fit(frame)


def test_train_ctr_cli_trains_bst(frame: pd.DataFrame, tmp_path) -> None:
    """``adpilot train ctr --model bst`` end to end; the file it writes serves through the numpy scorer."""
    data, out = tmp_path / "log.parquet", tmp_path / "bst.npz"
    frame.to_parquet(data)
    done = subprocess.run([sys.executable, "-m", "adpilot.cli", "train", "ctr", "--train", str(data), "--model", "bst",
                           "--label", "click", "--epochs", "2", "--embedding-dim", "8", "--attention-heads", "4",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "best epoch" in done.stdout and CTRModel.load(out).attention_heads == 4
    pctr, _ = load_scorer(out).score({"hist_item_id": [1, 2], "hist_cate": [1, 2]}, {"item_id": np.arange(5)}, {})
    assert pctr.shape == (5,) and np.ptp(pctr) > 0
