"""Training-speed rewrites of the layers must be the same maths: the bag-mean's scatter backward gives the
gradient of plain embedding lookups (issue #4, training throughput)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adpilot.rank.layers import Inputs


def test_pooled_tokens_and_history_keys_and_their_gradients_equal_plain_embedding() -> None:
    """Fields, sequences with repeated ids and an empty history: tokens (and DIN's packed keys) and the table
    gradient are those of plain embedding lookups and a masked mean."""
    gen = torch.Generator().manual_seed(0)
    inputs = Inputs(64, 4, (), 0)
    assert not inputs.embedding.sparse
    ids = torch.randint(1, 64, (5, 2), generator=gen)
    seqs = torch.randint(1, 64, (5, 2, 6), generator=gen)
    seqs[:, :, 4:] = 0
    seqs[1, :, 1:] = 0
    seqs[3] = 0  # no history: a zero token
    seqs[2, :, :4] = 7  # one id many times in a bag
    upstream = torch.randn(5, 4, 4, generator=gen)

    tokens = inputs.tokens(ids, seqs, torch.zeros(5, 0))
    (tokens * upstream).sum().backward()
    ours = inputs.embedding.weight.grad.clone()

    table = inputs.embedding.weight.detach().clone().requires_grad_(True)

    def plain() -> torch.Tensor:
        valid = (seqs[:, 0] > 0).unsqueeze(1).float()
        pooled = (F.embedding(seqs, table) * valid.unsqueeze(-1)).sum(2) / valid.sum(-1, keepdim=True).clamp(min=1)
        return torch.cat([F.embedding(ids, table), pooled], dim=1)

    reference = plain()
    (reference * upstream).sum().backward()

    torch.testing.assert_close(tokens, reference)
    assert tokens[3, 2:].abs().sum() == 0
    torch.testing.assert_close(ours, table.grad)
    assert ours.abs().sum() > 0

    inputs.embedding.weight.grad = None  # one lookup for tokens and DIN's packed keys: the same numbers
    together, keys, rows = inputs.tokens_and_history(ids, seqs, torch.zeros(5, 0))
    valid = seqs[:, 0] > 0
    assert rows.tolist() == valid.nonzero()[:, 0].tolist()
    weights = torch.randn(keys.shape, generator=gen)
    ((keys * weights).sum() + (together * upstream).sum()).backward()
    table.grad = None
    packed = F.embedding(seqs.transpose(1, 2)[valid], table).flatten(1)
    ((packed * weights).sum() + (plain() * upstream).sum()).backward()
    torch.testing.assert_close(together, reference)
    torch.testing.assert_close(keys, packed)
    torch.testing.assert_close(inputs.embedding.weight.grad, table.grad)
