"""Readers for public data sets, and the synthetic e-commerce world.

One module per source family; each reader takes its path as an argument (default under ``$ADPILOT_SHARED_DATA``)
and raises :class:`~adpilot.errors.InputFileError` naming a missing file:

- :mod:`.open_bandit` ``load_open_bandit(policy, campaign) -> BanditLog``, ``read_bandit_log(path)``
- :mod:`.ipinyou` ``load_ipinyou_bidding(campaign) -> BiddingEpisodes``, ``load_ipinyou_ctr() -> LibFMData``,
  ``load_libfm(file, featindex)``, ``iter_libfm(file, batch_rows)`` (streamed CSR blocks)
- :mod:`.talking_data` ``load_talkingdata() -> Table``, ``talkingdata_events(table) -> events``
- :mod:`.copytext` ``load_advertisegen() / load_kobe() -> list[CopyExample]``, ``parse_attributes(content)``
- :mod:`.reviews` ``load_chinese_reviews() / load_womens_reviews() -> Table``, ``*_review_records -> (events,
  products)``
- :mod:`.coat` ``load_coat() -> CoatData``
- :mod:`.amazon` ``read_s3rec(file) / load_s3rec(name) -> SequenceData``, ``sequence_records(data) -> (events,
  products)``, ``read_rechorus(file) -> RechorusLog``, ``load_grocery() -> GroceryData``
- :mod:`.taobao` ``load_taobao_behavior() -> Table``, ``taobao_events(table) -> (events, items)``
- :mod:`.samples` ``load_sample(name) -> Table`` for the tiny Criteo/Avazu/MovieLens/TaobaoAd/Ali-CCP/... samples
- :mod:`.export` ``export_records(name, out)``: the sets above that map to events/products, as Parquet for ingest
  (CLI ``adpilot datasets export NAME --out DIR``)
- :mod:`.world` the synthetic shop with its truth oracle (``World``, ``WorldConfig``, ``write_world``)

Modules are imported on use (``from adpilot.datasets.coat import load_coat``) so that the CLI starts fast.
"""
