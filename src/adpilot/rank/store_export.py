"""Training rows from the store, under the names the decision engine passes to a scorer.

``adpilot train export`` writes the store's logged impressions (labelled by
:func:`adpilot.rank.readers.store_impressions`) as Parquet that ``adpilot train ctr`` reads directly, with only
the columns :class:`adpilot.deliver.scorer.MappingScorerAdapter` fills at serving time — so a model trained on
the file scores live requests on the same inputs:

``user_id`` (pseudonym), ``ad_id``, ``campaign_id``, ``item_id`` (the ad's product), ``slot``, ``device``,
``hour``, ``hist_item_id`` (the user's last clicked/carted/bought products before the impression), ``ad_vec``
(the product's language-model vector) and ``hist_vec`` (mean vector of the history's products; zero without
history). At serving time ``hist_vec`` is the profile's interest vector, a time-decayed mean of the same item
vectors, so the two live in one space. Labels ``click`` and ``conversion``; rows in time order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adpilot.errors import UserError
from adpilot.store import Store

SERVED_COLUMNS = ("user_id", "ad_id", "campaign_id", "item_id", "slot", "device", "hour", "hist_item_id")
"""Features the engine passes for every candidate (besides the two vectors)."""


def training_frame(store: Store, encoder_name: str, max_history: int = 50) -> pd.DataFrame:
    """Labelled impressions with the served features and vectors (see the module docstring), plus ``ts``."""
    from adpilot.rank.readers import store_impressions
    from adpilot.understand.items import load_product_vectors

    ids, vectors = load_product_vectors(store, encoder_name)
    if not ids:
        raise UserError(f"the store has no `{encoder_name}` product vectors: run `adpilot profile build "
                        f"--encoder {encoder_name}` first")
    frame = store_impressions(store.con, max_history)
    campaigns = store.con.execute("SELECT ad_id, campaign_id FROM ads").df()
    frame = frame.merge(campaigns, on="ad_id", how="left")
    row = pd.Index(ids)
    zero = np.zeros(vectors.shape[1], np.float32)
    ad_rows = row.get_indexer(frame["item_id"])
    frame["ad_vec"] = [vectors[r] if r >= 0 else zero for r in ad_rows]
    frame["hist_vec"] = [_mean_vector(vectors, row.get_indexer(h), zero) for h in frame["hist_item_id"]]
    return frame[[*SERVED_COLUMNS, "ad_vec", "hist_vec", "click", "conversion", "ts"]]


def _mean_vector(vectors: np.ndarray, rows: np.ndarray, zero: np.ndarray) -> np.ndarray:
    known = rows[rows >= 0]
    return vectors[known].mean(axis=0) if len(known) else zero


def export_training(store: Store, out: str | Path, encoder_name: str, test_days: float = 0.0,
                    max_history: int = 50) -> dict[str, int]:
    """Write ``out/train.parquet`` (and ``out/test.parquet``: impressions of the last ``test_days`` days) and
    return the rows written per file."""
    if test_days < 0:
        raise UserError(f"`test_days` must be >= 0, got {test_days}")
    frame = training_frame(store, encoder_name, max_history)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    cut = frame["ts"].max() - pd.Timedelta(days=test_days) if test_days else None
    parts = {"train": frame if cut is None else frame[frame["ts"] <= cut]}
    if cut is not None:
        parts["test"] = frame[frame["ts"] > cut]
    written = {}
    for name, part in parts.items():
        if part.empty:
            raise UserError(f"no impressions fall in the {name} part: choose a `test_days` inside the log's span")
        table = pa.Table.from_pandas(part.drop(columns=["ts"]), preserve_index=False)
        pq.write_table(table, folder / f"{name}.parquet")
        written[name] = len(part)
    return written
