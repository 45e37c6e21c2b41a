"""The rank room's contracts: which columns a CTR/CVR model reads, and how the serving side passes them.

Feature contract
----------------
A model reads a table (pandas DataFrame or Arrow) whose columns fall into four kinds, named in a
:class:`FeatureSpec`. Column *order* never matters; *names* do.

``categorical``
    One string or integer per row (``ad_id``, ``campaign_id``, ``category``, ``brand``, ``price_bucket``,
    ``segment``, ``slot``, ``device``, ``geo``, ``hour``, ...). Values are hashed into a fixed number of
    buckets per field (see :mod:`adpilot.rank.features`), so an id never seen in training still maps to a
    bucket: no vocabulary to keep in sync, no "unknown category" failure at serving time. Missing (``None``
    / NaN) maps to the reserved bucket 0.
``sequences``
    A list of ids per row (the user's recent items, newest last) paired with the categorical field it
    shares its hash space and embeddings with: ``hist_<field>`` pairs with ``<field>`` (``hist_ad_id`` ->
    ``ad_id``, ``hist_category`` -> ``category``), and ``recent_items`` with ``item_id``/``product_id``/``ad_id``.
    Parallel sequences (an item list and its category list) must be aligned position by position. Sequence
    models attend from the candidate to these items; the other models mean-pool them.
``dense``
    One number per row (user stats such as ``n_events``; ``price``). Standardised with training mean/std;
    NaN is replaced by the training mean, because missing numbers are normal in logs.
``vectors``
    A fixed-length float vector per row, e.g. the frozen language-model vector of the candidate ad's text
    (``ad_vec``) and the mean vector of the user's recent items (``hist_vec``). Each is projected to the
    embedding size and used as one more field, so an ad never seen in training still gets a meaningful score
    from its text. NaN in a vector is an error (a broken encoder, not a missing value).

Serving (:mod:`adpilot.rank.scorer`)
------------------------------------
``Scorer.score(user, ads, context) -> (pctr, pcvr)`` with

* ``user``: a mapping for one user: profile fields (``segment_id``, ``recent_items`` list, ``hist_vec`` the
  mean interest/recent-item vector, behaviour stats);
* ``ads``: a mapping of equal-length columns for the candidates (``ad_id``, ``campaign_id``, ``category``,
  ``brand``, ``price_bucket``, ``ad_vec`` as an ``[n, d]`` array);
* ``context``: a mapping for the request (``slot``, ``device``, ``geo``, ``hour``).

The three mappings are merged (user and context broadcast over the candidates) and read through the model's
:class:`FeatureSpec`; a field the model needs but nobody passed is treated as missing (bucket 0 / training mean
/ zero vector), so the engine may pass more than a model uses and a model may be retrained on more fields
without changing the engine. Both outputs are float64 in [0, 1]. A model with a conversion head (ESMM)
returns its pCVR (the CVR tower, calibrated on the clicked validation rows); a single-head model returns the
constant ``cvr_prior`` given to ``load_scorer`` (default 0: "unknown", so a CPA bid on it bids nothing rather
than something invented). Column names are the training table's: train on the same names the engine passes
(the store's ``profiles``/``ads`` columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adpilot.errors import UserError

FORMAT_VERSION = 1
"""Bumped whenever the saved model layout changes; loading another version is a :class:`UserError`."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which input columns a model reads, by kind (see the module docstring), and how many hash buckets.

    >>> spec = FeatureSpec(categorical=("item_id", "cate"), sequences=(("hist_item_id", "item_id"),))
    >>> spec.columns()
    ['item_id', 'cate', 'hist_item_id']
    """

    categorical: tuple[str, ...] = ()
    sequences: tuple[tuple[str, str], ...] = ()
    dense: tuple[str, ...] = ()
    vectors: tuple[tuple[str, int], ...] = ()
    buckets: dict[str, int] = field(default_factory=dict)
    default_buckets: int = 2**18
    max_seq_len: int = 50

    def __post_init__(self) -> None:
        targets = set(self.categorical)
        for seq, target in self.sequences:
            if target not in targets:
                raise UserError(f"sequence column `{seq}` refers to `{target}`, which is not a categorical field")
        names = self.columns()
        if len(set(names)) != len(names):
            raise UserError(f"feature columns must be distinct, got {names}")
        if not names:
            raise UserError("a model needs at least one feature column")

    def columns(self) -> list[str]:
        """Every input column the model reads."""
        return ([*self.categorical] + [s for s, _ in self.sequences] + [*self.dense]
                + [v for v, _ in self.vectors])

    def n_buckets(self, name: str) -> int:
        """Hash buckets of a categorical field (bucket 0 is reserved for missing / padding)."""
        return self.buckets.get(name, self.default_buckets)

    def to_dict(self) -> dict[str, object]:
        return {"categorical": list(self.categorical), "sequences": [list(p) for p in self.sequences],
                "dense": list(self.dense), "vectors": [list(v) for v in self.vectors],
                "buckets": dict(self.buckets), "default_buckets": self.default_buckets,
                "max_seq_len": self.max_seq_len}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(categorical=tuple(d["categorical"]), sequences=tuple(tuple(p) for p in d["sequences"]),
                   dense=tuple(d["dense"]), vectors=tuple((v, int(n)) for v, n in d["vectors"]),
                   buckets=dict(d["buckets"]), default_buckets=int(d["default_buckets"]),
                   max_seq_len=int(d["max_seq_len"]))
