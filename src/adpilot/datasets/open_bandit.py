"""Open Bandit Dataset (ZOZOTOWN): logged bandit feedback with the logging policy's true propensities.

A log is a folder holding ``<campaign>.csv`` and ``item_context.csv`` (or the csv itself, with
``item_context.csv`` beside it), as in the ``obp`` package: policies ``random`` (uniform) and ``bts`` (Bernoulli
Thompson sampling); campaigns ``all`` (80 items), ``men`` (34), ``women`` (46). The csv has ``timestamp, item_id,
position (1..L), click (0/1), propensity_score`` and context columns ``user_feature_*`` (categorical) and
``user-item_affinity_*`` (numeric); ``item_context.csv`` has ``item_id`` (0..K-1) and ``item_feature_*``. Rows are
sorted by time on reading. Any log of this format reads with :func:`read_bandit_log`; the shared copy by name with
:func:`load_open_bandit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adpilot.datasets._common import PathLike, source_path
from adpilot.errors import InputFileError, UserError

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")

REQUIRED = ("timestamp", "item_id", "position", "click", "propensity_score")


@dataclass(frozen=True)
class BanditLog:
    """One log of (context, action at a position, click, logging propensity), time-ordered.

    ``users``: categorical user features, one row per impression; ``affinity``: shape (n, n_items) or (n, 0);
    ``items``: the item context table indexed by item id 0..n_actions-1.
    """

    timestamp: pd.Series
    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    users: pd.DataFrame
    affinity: np.ndarray
    items: pd.DataFrame
    source: str

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.items.shape[0])

    @property
    def len_list(self) -> int:
        return int(self.position.max()) + 1

    def take(self, rows: np.ndarray | slice) -> BanditLog:
        """The same log restricted to ``rows`` (item table unchanged)."""
        return BanditLog(self.timestamp.iloc[rows].reset_index(drop=True), self.action[rows], self.position[rows],
                         self.reward[rows], self.pscore[rows], self.users.iloc[rows].reset_index(drop=True),
                         self.affinity[rows], self.items, self.source)

    def split_by_time(self, train_share: float) -> tuple[BanditLog, BanditLog]:
        """The first ``train_share`` of rows (in time order) and the rest."""
        if not 0 < train_share < 1:
            raise UserError(f"`split` must be strictly between 0 and 1, got {train_share}")
        cut = int(self.n_rounds * train_share)
        if cut == 0 or cut == self.n_rounds:
            raise UserError(f"`split` {train_share} leaves one side of {self.n_rounds} rows empty")
        return self.take(slice(0, cut)), self.take(slice(cut, None))


def _csv_and_items(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        csvs = sorted(p for p in path.glob("*.csv") if p.name != "item_context.csv")
        if len(csvs) != 1:
            raise InputFileError(f"log folder {path} must hold exactly one log csv besides item_context.csv, "
                                 f"found {[p.name for p in csvs]}")
        path = csvs[0]
    if not path.is_file():
        raise InputFileError(f"log {path} does not exist")
    items = path.parent / "item_context.csv"
    if not items.is_file():
        raise InputFileError(f"log {path} has no item_context.csv beside it")
    return path, items


def read_bandit_log(path: str | Path) -> BanditLog:
    """Read and validate an Open Bandit-format log; every problem is one :class:`UserError` sentence."""
    csv, items_csv = _csv_and_items(Path(path))
    try:
        frame = pd.read_csv(csv)
        items = pd.read_csv(items_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputFileError(f"{csv} cannot be read as csv: {error}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputFileError(f"log {csv} lacks the column(s) {missing}")
    if "item_id" not in items.columns:
        raise InputFileError(f"{items_csv} lacks the column 'item_id'")
    if frame.empty:
        raise InputFileError(f"log {csv} has no rows")
    items = items.drop(columns=[c for c in items.columns if c.startswith("Unnamed")]).set_index("item_id")
    items = items.sort_index()
    if not np.array_equal(items.index.to_numpy(), np.arange(len(items))):
        raise InputFileError(f"{items_csv}: item ids must be 0..{len(items) - 1}")
    # same (unstable) sort as obp's loader, so that tied timestamps land in the same order in both
    frame = frame.sort_values("timestamp", kind="quicksort").reset_index(drop=True)
    pscore = pd.to_numeric(frame["propensity_score"], errors="coerce").to_numpy(float)
    bad = ~((pscore > 0) & (pscore <= 1))
    if bad.any():
        raise UserError(f"log {csv}: `propensity_score` must lie in (0, 1], got {int(bad.sum())} row(s) outside "
                        f"(e.g. {pscore[bad][0]}); importance weights cannot be computed")
    click = pd.to_numeric(frame["click"], errors="coerce").to_numpy(float)
    if not np.isin(click, (0, 1)).all():
        raise UserError(f"log {csv}: `click` must be 0 or 1")
    action = frame["item_id"].to_numpy()
    unknown = np.setdiff1d(action, items.index.to_numpy())
    if unknown.size:
        raise UserError(f"log {csv} shows item(s) {unknown[:5].tolist()} that are not in item_context.csv")
    position = pd.to_numeric(frame["position"], errors="coerce").to_numpy()
    if np.isnan(position).any() or (position < 1).any():
        raise UserError(f"log {csv}: `position` must be 1, 2, ... (the slot shown)")
    affinity_cols = [c for c in frame.columns if c.startswith("user-item_affinity_")]
    user_cols = [c for c in frame.columns if c.startswith("user_feature_")]
    return BanditLog(pd.to_datetime(frame["timestamp"], utc=True, errors="coerce"), action.astype(int),
                     position.astype(int) - 1, click, pscore, frame[user_cols].astype(str),
                     frame[affinity_cols].to_numpy(float), items, str(csv))


def check_same_items(train: BanditLog, test: BanditLog) -> None:
    """Refuse a train/test pair whose item sets differ: a policy can only rank the items it has seen."""
    if train.n_actions != test.n_actions:
        raise UserError(f"train log has {train.n_actions} items but test log has {test.n_actions}: the item sets "
                        "differ, use logs of the same campaign")
    if train.len_list != test.len_list:
        raise UserError(f"train log has {train.len_list} positions but test log has {test.len_list}")


def load_open_bandit(policy: str = "random", campaign: str = "all", path: PathLike | None = None) -> BanditLog:
    """Read one (policy, campaign) log from ``path`` (default ``<shared>/open_bandit_dataset``)."""
    if policy not in POLICIES:
        raise UserError(f"`policy` must be one of {POLICIES}, got {policy!r}")
    if campaign not in CAMPAIGNS:
        raise UserError(f"`campaign` must be one of {CAMPAIGNS}, got {campaign!r}")
    return read_bandit_log(source_path(path, "open_bandit_dataset") / policy / campaign)
