"""rank room: CTR/CVR models, training, calibration, and a numpy scorer for serving.

Training side (imports torch): :class:`adpilot.rank.estimator.CTRModel` (``fit``/``predict_proba``/``save``/
``load``) over the registry in :mod:`adpilot.rank.models` (``lr``, ``deepfm``, ``dcnv2``, ``din``, ``bst``, ``esmm``, ``escm2``).
Serving side (numpy only): :func:`adpilot.rank.scorer.load_scorer`. Feature contract: :mod:`adpilot.rank.base`.
CLI: ``adpilot train ctr`` / ``adpilot eval ctr``.
"""
