"""create room: LLM-written ad copy per (ad, audience), checked for advertising-law compliance, scored, stored.

Flow: ``prompts`` (product + audience + retrieved shots from ``retrieval``) → an ``LLM`` from ``base``
(``local`` llama.cpp, ``openai_chat``, ``template``; built by ``factory``, wrapped by ``cache``) → ``writer``
(review with ``compliance``, repair, de-duplicate, rank by consensus) → ``scoring`` → ``studio`` (``creatives``
table, resumable). ``evaluate`` and ``metrics`` measure copy against references (AdvertiseGen protocol).
"""
