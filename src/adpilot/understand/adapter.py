"""A two-tower retrieval model over the frozen LM item vectors, learned from behaviour, usable on unseen items.

The raw LM vector of a product weighs every word of its text alike (brand, season, selling phrase, leaf,
style); behaviour says which of them predict what a user looks at next. :class:`LMAdapter` learns that:

- **item tower**: ``e_i = h_i + MLP(h_i)`` with ``h_i = A v_i`` a linear map of the item's frozen LM vector
  ``v_i``, and a bias ``b_i = w·v_i + p_i``: a text part plus a popularity part ``p_i`` = ``rate_weight`` times
  the item's counted log interaction rate (count over time since first seen) if it has interactions, else one
  learned ``cold_bias``. An item nobody has touched yet (cold start) so gets its vector and the text part of
  its bias from its text alone;
- **user tower**: a pooling of the adapted vectors of the user's recent distinct items (newest first, the
  profile's ``recent_items``), weighted by learned per-position weights (recency), then ``u = p + MLP(p)``;
- **score** ``u·e_i + b_i``, trained on time-ordered (history → next item) pairs of the training events whose
  target starts a session (at least ``min_gap`` seconds after the user's previous interaction, as the first
  item after a time cut does; inside a session the next item mostly repeats the last one's category, which
  would teach recency instead of taste), with a softmax over ``n_negatives`` items drawn uniformly per batch
  from the catalogue (all of them when there are fewer): a uniform proposal, so the logQ correction is a
  constant that drops out of the softmax, and popular items are not over-penalised as in-batch negatives would
  be. Popularity is as known at the example's time: an item first seen later is cold then, which is how
  ``cold_bias`` learns how likely a not-yet-seen item is (items that never launch included).

That calibrated cold prior maximises overall recall but rarely lets a cold item into a top 50: by expected hit
probability a new item seldom beats the 50th warm one. Exposure for new items is a separate decision, made by
reserving a few slots for them (:func:`~adpilot.understand.retrieval.reserve_cold_slots`) rather than by
shifting their bias, whose effect depends on each model's score scale.

Default hyper-parameters were picked on worlds of seed 9 only (see ``benchmarks/bench_understand_quality.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from adpilot.errors import check_scalar
from adpilot.store import Store
from adpilot.understand.retrieval import ITEM_EVENTS


def store_interactions(store: Store, product_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user codes, item rows of ``product_ids``, times in seconds) of the store's item events (no bots), sorted
    by (user, time): the input of :meth:`LMAdapter.fit`."""
    types = ", ".join(f"'{t}'" for t in ITEM_EVENTS)
    wanted = pd.DataFrame({"item_id": product_ids, "row": np.arange(len(product_ids))})  # noqa: F841
    frame = store.con.sql(f"""
        SELECT dense_rank() OVER (ORDER BY e.user_id) - 1 AS user, w.row, epoch(e.ts) AS t
        FROM events e JOIN wanted w USING (item_id)
        WHERE e.type IN ({types}) AND NOT coalesce(e.bot_flag, FALSE)
        ORDER BY e.user_id, e.ts, e.event_id, e.source_file, e.source_row""").df()
    return frame["user"].to_numpy(np.int64), frame["row"].to_numpy(np.int64), frame["t"].to_numpy(np.float64)


def next_item_pairs(users: np.ndarray, item_rows: np.ndarray, times: np.ndarray, history: int,
                    min_gap: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(histories (n, ``history``), targets (n,), times (n,)) from interactions sorted by (user, time).

    Targets are the interactions that come at least ``min_gap`` after the user's previous one (with
    ``min_gap`` 0: every interaction whose item differs from the previous one); each one's history is the last
    ``history`` distinct items before it, newest first, -1 padded (what ``recent_rows`` gives at serving time).
    A user's first interaction has no history and is never a target.

    >>> h, t, _ = next_item_pairs(np.array([0, 0, 0, 0, 1]), np.array([5, 5, 6, 5, 7]), np.arange(5), history=2)
    >>> h.tolist(), t.tolist()
    ([[5, -1], [6, 5]], [6, 5])
    >>> next_item_pairs(np.zeros(4, int), np.array([1, 2, 3, 3]), np.array([0, 1, 9, 20]), 2, min_gap=5)[1].tolist()
    [3, 3]
    """
    check_scalar(history, "history", ge=1)
    check_scalar(min_gap, "min_gap", ge=0)
    if not (len(users) == len(item_rows) == len(times)):
        raise ValueError(f"`users`, `item_rows` and `times` have lengths {len(users)}, {len(item_rows)}, "
                         f"{len(times)}")
    new_user = np.r_[True, users[1:] != users[:-1]]
    if min_gap > 0:
        is_target = ~new_user & np.r_[False, np.diff(times) >= min_gap]
    else:
        is_target = ~new_user & np.r_[True, item_rows[1:] != item_rows[:-1]]
    out = np.full((int(is_target.sum()), history), -1, dtype=np.int64)
    recent: list[int] = []
    n = 0
    for first, item, target in zip(new_user.tolist(), item_rows.tolist(), is_target.tolist(), strict=True):
        if first:
            recent = []
        if target:
            out[n, : len(recent)] = recent
            n += 1
        if item in recent:
            recent.remove(item)
        recent.insert(0, item)
        del recent[history:]
    return out, item_rows[is_target].astype(np.int64), times[is_target]


def _log_rate(item_rows: np.ndarray, when: np.ndarray, first_seen: np.ndarray, warm: np.ndarray) -> torch.Tensor:
    """Centred log of each warm item's interaction rate over the training period (count over time since first
    seen, floored at 2% of the span), 0 elsewhere: the popularity part of the bias, counted rather than learned
    (a sampled softmax moves a free per-item bias too slowly within the step budget)."""
    if len(item_rows) == 0:
        return torch.zeros(len(warm))
    end, span = when.max(), max(when.max() - when.min(), 1e-9)
    counts = np.bincount(item_rows, minlength=len(warm)) + 0.5
    live = np.maximum(end - np.where(warm, first_seen, end), 0) + 0.02 * span
    rate = np.where(warm, np.log(counts / live), 0.0)
    return torch.tensor(np.where(warm, rate - rate[warm].mean(), 0.0), dtype=torch.float32)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads, then give the caller back its own setting."""
    kept = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(kept)


class _Towers(nn.Module):
    log_rate: torch.Tensor

    def __init__(self, lm_dim: int, dim: int, hidden: int, history: int, log_rate: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(lm_dim, dim, bias=False)
        self.item_mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.text_bias = nn.Linear(lm_dim, 1)
        self.register_buffer("log_rate", log_rate)
        self.rate_weight = nn.Parameter(torch.ones(()))
        self.cold_bias = nn.Parameter(torch.zeros(()))
        self.position = nn.Parameter(torch.zeros(history))
        self.user_mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def items(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adapted vectors, text biases) of LM ``vectors``."""
        projected = self.linear(vectors)
        return projected + self.item_mlp(projected), self.text_bias(vectors).squeeze(-1)

    def popularity(self, rows: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """The bias part of catalogue ``rows`` (any shape) that interactions give where ``seen``, else the learned
        bias of an item nobody has touched yet."""
        return torch.where(seen, self.rate_weight * self.log_rate[rows], self.cold_bias)

    def users(self, item_vectors: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
        """User vectors from ``histories`` (rows of ``item_vectors``, newest first, -1 pads)."""
        pad = histories < 0
        weights = torch.softmax(self.position.expand(histories.shape).masked_fill(pad, -1e9), dim=1)
        weights = weights.masked_fill(pad, 0.0)  # an empty history pools to zero
        pooled = torch.einsum("bh,bhd->bd", weights, item_vectors[histories.clamp(min=0)])
        return pooled + self.user_mlp(pooled)


class LMAdapter:
    """Two-tower next-item model on frozen LM item vectors (see the module docstring).

    ``fit`` learns ``model_`` (the towers), ``warm_`` (items with a training interaction) and ``loss_`` (mean
    training loss of each tenth of the steps). ``scores(recent, items)`` ranks any catalogue, unseen items included.

    >>> rng = np.random.default_rng(0)
    >>> items = rng.normal(size=(6, 8)).astype(np.float32)
    >>> users, rows = np.repeat(np.arange(40), 4), np.tile([0, 1, 2, 0], 40)
    >>> adapter = LMAdapter(dim=4, hidden=8, steps=200, batch_size=64, history=3, min_gap=0)
    >>> adapter = adapter.fit(users, rows, np.arange(160.0), items)
    >>> adapter.warm_.tolist()
    [True, True, True, False, False, False]
    >>> adapter.scores(np.array([[0, -1, -1]]), items).argmax().item()  # after 0 comes 1
    1
    """

    def __init__(self, dim: int = 64, hidden: int = 128, history: int = 50, steps: int = 400,
                 batch_size: int = 2048, lr: float = 1e-2, weight_decay: float = 1e-5,
                 n_negatives: int = 1024, min_gap: float = 1800.0, threads: int = 1, seed: int = 0) -> None:
        self.dim, self.hidden, self.history, self.steps = dim, hidden, history, steps
        self.batch_size, self.lr, self.weight_decay = batch_size, lr, weight_decay
        self.n_negatives, self.min_gap = n_negatives, min_gap
        self.threads, self.seed = threads, seed

    def fit(self, users: np.ndarray, item_rows: np.ndarray, times: np.ndarray, items: np.ndarray) -> LMAdapter:
        """Learn from interactions (``users`` codes, ``item_rows`` of ``items``, ``times`` in any unit) sorted by
        (user, time), and the frozen item vectors ``items`` (m, d)."""
        for name in ("dim", "hidden", "history", "steps", "batch_size", "n_negatives", "threads"):
            check_scalar(getattr(self, name), name, ge=1)
        check_scalar(self.lr, "lr", gt=0)
        check_scalar(self.weight_decay, "weight_decay", ge=0)
        if len(items) == 0:
            raise ValueError("`items` is empty: the adapter needs the catalogue's vectors")
        order = np.lexsort((times, users))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError("interactions must be sorted by (`users`, `times`)")
        histories, targets, when = next_item_pairs(users, item_rows, times, self.history, self.min_gap)
        n_items = len(items)
        self.warm_ = np.zeros(n_items, dtype=bool)
        self.warm_[item_rows] = True
        first_seen = np.full(n_items, np.inf)
        np.minimum.at(first_seen, item_rows, times.astype(np.float64))
        generator = torch.Generator().manual_seed(self.seed)
        with _threads(self.threads), torch.random.fork_rng():  # seeded without touching the caller's global state
            torch.manual_seed(self.seed)
            self.model_ = _Towers(items.shape[1], self.dim, self.hidden, self.history,
                                  _log_rate(item_rows, times.astype(np.float64), first_seen, self.warm_))
            self.loss_ = self._train(torch.tensor(items, dtype=torch.float32), histories, targets,
                                     when.astype(np.float64), first_seen, generator)
        return self

    def _train(self, vectors: torch.Tensor, histories: np.ndarray, targets: np.ndarray, when: np.ndarray,
               first_seen: np.ndarray, generator: torch.Generator) -> list[float]:
        """``steps`` AdamW steps on random batches, the learning rate falling linearly to 0; returns the mean loss
        of each tenth of them."""
        model = self.model_
        optimiser = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / self.steps)  # linear to 0
        histories_t, targets_t = torch.from_numpy(histories), torch.from_numpy(targets)
        when_t, first_t = torch.from_numpy(when), torch.from_numpy(first_seen)
        n_items = len(first_seen)
        losses: list[float] = []
        model.train()
        for step in range(self.steps if len(targets) else 0):
            batch = torch.randint(len(targets), (self.batch_size,), generator=generator)
            history, target, now = histories_t[batch], targets_t[batch], when_t[batch][:, None]
            pool = torch.arange(n_items)
            if n_items > self.n_negatives:
                pool = torch.randint(n_items, (self.n_negatives,), generator=generator)
            # the towers run on the items this batch touches only, so a step costs the same on any catalogue
            rows, local = torch.unique(torch.cat([history.clamp(min=0).flatten(), target, pool]), return_inverse=True)
            item_vectors, text_bias = model.items(vectors[rows])
            n_history = history.numel()
            user = model.users(item_vectors, local[:n_history].view_as(history).masked_fill(history < 0, -1))
            mine, theirs = local[n_history : n_history + len(batch)], local[n_history + len(batch) :]
            # popularity as known at the example's time: an item first seen later is cold then
            positive = ((user * item_vectors[mine]).sum(1) + text_bias[mine]
                        + model.popularity(target, first_t[target] < now[:, 0]))
            negative = (user @ item_vectors[theirs].T + text_bias[theirs]
                        + model.popularity(pool.expand(len(batch), -1), first_t[pool][None, :] < now))
            negative = negative.masked_fill(pool[None, :] == target[:, None], float("-inf"))
            logits = torch.cat([positive[:, None], negative], dim=1)
            loss = nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if step % max(self.steps // 10, 1) == 0:
                losses.append(0.0)
            losses[-1] += loss.item() / max(self.steps // 10, 1)
        model.eval()
        return losses

    def warm(self, n_items: int) -> np.ndarray:
        """Which of ``n_items`` catalogue rows (the fitted catalogue, new items appended after it) had a training
        interaction: ``warm_``, False for the appended items."""
        n_fitted = len(self.warm_)
        if n_items < n_fitted:
            raise ValueError(f"`items` has {n_items} rows, fewer than the {n_fitted} the adapter was fitted on")
        return np.concatenate([self.warm_, np.zeros(n_items - n_fitted, dtype=bool)])

    def item_vectors(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(adapted vectors (m, dim), biases (m,)) of ``items``: the fitted catalogue, optionally with new items
        appended after it, which (like the fitted items without interactions) get the cold bias."""
        seen = self.warm(len(items))
        rows = np.where(seen, np.arange(len(items)), 0)
        with torch.no_grad(), _threads(self.threads):
            vectors, text_bias = self.model_.items(torch.tensor(items, dtype=torch.float32))
            bias = text_bias + self.model_.popularity(torch.from_numpy(rows), torch.from_numpy(seen))
            return vectors.numpy(), bias.numpy()

    def scores(self, recent: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n users, m items) scores from ``recent`` item rows (n, r; newest first, -1 pads) of ``items`` (as in
        :meth:`item_vectors`); histories longer than ``history`` are cut."""
        adapted, bias = self.item_vectors(items)
        with torch.no_grad(), _threads(self.threads):
            recent = recent[:, : self.history]
            if recent.shape[1] < self.history:
                recent = np.pad(recent, ((0, 0), (0, self.history - recent.shape[1])), constant_values=-1)
            user = self.model_.users(torch.from_numpy(adapted), torch.from_numpy(recent.astype(np.int64)))
            return user.numpy() @ adapted.T + bias
