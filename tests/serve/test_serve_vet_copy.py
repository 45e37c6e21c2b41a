"""Advertiser copy is held to its slot: a banner's keyword line passes, a feed's must read as prose, and copy
without a slot (it may run as a banner) is not held to the prose rules; the advertising law applies everywhere."""

from adpilot.serve.main import vet_copy


def test_banner_keyword_line_passes_but_feed_needs_prose() -> None:
    line = "夏季新款纯棉T恤透气舒适男女同款百搭休闲"
    assert vet_copy(line, "zh", "banner") == []
    assert any(v.startswith("unfinished") for v in vet_copy(line, "zh", "feed"))
    assert vet_copy(line, "zh", None) == []


def test_absolute_terms_are_refused_in_every_slot() -> None:
    for slot in ("banner", "feed", None, "home_top"):
        assert any("第一" in v for v in vet_copy("这双跑步鞋是全网第一，轻盈透气。", "zh", slot)), slot
