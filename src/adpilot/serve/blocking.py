"""Advertiser-domain and category blocks of a request (OpenRTB ``badv`` / ``bcat``; ``AdRequest.block_domains`` /
``block_categories``), enforced at the edge on what the engine placed.

A campaign is blocked when its advertiser's domain is listed (exact, case-insensitive); an ad when any category of
its product is listed (exact strings, as stored in ``products.category``). The engine does not read the block lists
yet, so a blocked winner is withdrawn after the auction: its reservation is released and the slot stays empty
rather than going to the runner-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adpilot.schema import PlacedAd
from adpilot.serve.repository import Repository


@dataclass(frozen=True)
class Blocklists:
    """What the block lists are matched against: campaign → advertiser domain, ad → product categories."""

    domains: dict[str, str]
    categories: dict[str, frozenset[str]]

    @classmethod
    def from_repository(cls, repository: Repository) -> Blocklists:
        return cls(repository.campaign_domains(), repository.ad_categories())

    def blocked(self, ads: Sequence[PlacedAd], block_domains: Sequence[str],
                block_categories: Sequence[str]) -> list[PlacedAd]:
        """The placed ads that the lists forbid.

        >>> lists = Blocklists({"c1": "shoes.example"}, {"a2": frozenset({"服饰"})})
        >>> ad = lambda a, c: PlacedAd(ad_id=a, campaign_id=c, creative_id=None, text=None, price=0.1, ecpm=1,
        ...                            pctr=0.1, pcvr=0.0, token="t")
        >>> [x.ad_id for x in lists.blocked([ad("a1", "c1"), ad("a2", "c2"), ad("a3", "c3")],
        ...                                   ["Shoes.example"], ["服饰"])]
        ['a1', 'a2']
        """
        domains = {d.lower() for d in block_domains}
        categories = set(block_categories)
        return [ad for ad in ads
                if self.domains.get(ad.campaign_id, "\0").lower() in domains
                or not categories.isdisjoint(self.categories.get(ad.ad_id, ()))]
