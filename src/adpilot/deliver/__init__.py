"""deliver room: the decision engine — one decision path for serving, simulation and replay.

Modules, along the path of a request (:class:`adpilot.deliver.engine.DecisionEngine`):

``snapshot``   read-only columnar bundle (campaigns, ads, creatives, profiles, ANN index, scorer), swapped whole
``user_table`` the snapshot's users (interest vectors, consent, segment, purchases, recent items) as arrays
``retrieval``  faiss index over ad vectors (exact below 20k ads, IVF in float16 above) and LRU caches of query
               vectors and of a page's or query's neighbours
``targeting``  geo / device / hour / schedule / audience (segments, interest words, look-alikes) / exclusions
               / the request's block lists (advertiser domains, product categories: OpenRTB badv / bcat)
``counters``   budgets (reserve -> commit / expire), frequency caps, de-duplication, bandit counts; in-process or
               Redis (Lua scripts), one interface (``base.Counters``)
``pacing``     PI controller on spend-vs-plan: throttling, or bid shading for max-clicks campaigns
``auction``    bids by strategy (manual CPC, oCPC = target CPA x pCVR, max clicks), GSP or first price
``bandits``    Thompson sampling over an ad's creatives, priors from predicted CTR
``tokens``     HMAC-signed tracking tokens; ``feedback`` applies impression / click / conversion events
``scorer``     a small calibrated logistic scorer, and the adapter for the rank room's exported models

Billing model: cost per click. The auction price per click is reserved against the campaign's total and daily
budgets when the ad is served; a click commits it, an unclicked reservation expires with its token. Hence
``spent + reserved <= budget`` always, under any concurrency. Frequency is counted when an ad is served.
"""
