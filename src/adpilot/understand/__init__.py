"""understand: who users are and what products mean, from behaviour logs and pretrained text encoders.

- ``base.TextEncoder`` / ``registry.get_encoder``: e5 (default), USE, any OpenAI-compatible endpoint.
- ``cache.encode_cached``: vectors cached in the store's ``embeddings`` table.
- ``items``: product and ad vectors (``product_vectors``) from one text template per language.
- ``profiles``: ``build_profiles`` / ``update_profiles`` (``profiles``, ``profile_affinity``, ``profile_keys``, ``profile_meta``).
- ``segments``, ``lookalike``, ``anomalies``: audiences and bot flags; ``evaluate`` / ``anomaly_eval``: quality.

Submodules are imported on use, so that ``adpilot --help`` does not load numpy, DuckDB or models.
"""
