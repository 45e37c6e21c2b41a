"""The published replay rules on handmade episodes whose outcome is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.deliver.bidding import CampaignStats, LinearBidder, MaxCPCBidder, episode_budget
from adpilot.errors import InputFileError, UserError
from adpilot.measure.replay import Episodes, parse_ratio, read_campaign_stats, read_episodes, replay

NO_AUCTION = np.iinfo(np.int64).max // 4


def episodes(rows: list[list[tuple[int, int, float]]], horizon: int | None = None) -> Episodes:
    """Episodes from lists of (click, price, pCTR), padded like the reader pads them."""
    horizon = horizon or max(len(r) for r in rows)
    shape = (len(rows), horizon)
    grid = Episodes(np.zeros(shape, bool), np.full(shape, NO_AUCTION, np.int64), np.zeros(shape),
                    np.array([len(r) for r in rows]), np.arange(1, len(rows) + 1))
    for e, row in enumerate(rows):
        for t, (click, price, pctr) in enumerate(row):
            grid.click[e, t], grid.price[e, t], grid.pctr[e, t] = click, price, pctr
    return grid


def stats(cpc: float = 1000.0, ctr: float = 0.01) -> CampaignStats:
    return CampaignStats(cpm=50.0, cpc=cpc, ctr=ctr, price_counts=np.ones(301))


def test_integer_bid_wins_ties_and_pays_the_market_price():
    # Mcpc bids pCTR x 1000: 10.9 -> 10 wins at 10 (tie) and pays 10; 10.9 -> 10 loses at 11.
    log = episodes([[(1, 10, 0.0109), (1, 11, 0.0109), (0, 3, 0.0109)]])
    result = replay(MaxCPCBidder().fit(stats()), log, budget=1000)
    assert result.impressions.tolist() == [2]
    assert result.clicks.tolist() == [1]
    assert result.spend.tolist() == [13]


def test_bids_are_capped_at_300():
    log = episodes([[(0, 300, 0.9), (0, 301, 0.9)]])
    result = replay(MaxCPCBidder().fit(stats()), log, budget=10_000)
    assert result.impressions.tolist() == [1] and result.spend.tolist() == [300]


def test_bids_are_capped_at_the_remaining_budget_and_budgets_reset_each_episode():
    # Budget 15: wins 10, then bids min(50, 5) = 5 and wins at 5, then has 0 left and only a free auction wins.
    one = [(0, 10, 0.05), (1, 5, 0.05), (1, 1, 0.05), (1, 0, 0.05)]
    result = replay(MaxCPCBidder().fit(stats()), episodes([one, one]), budget=15)
    assert result.spend.tolist() == [15, 15]
    assert result.impressions.tolist() == [3, 3]
    assert result.clicks.tolist() == [2, 2]
    assert result.totals()["budget_used"] == 1.0


def test_short_episode_counts_only_its_auctions():
    log = episodes([[(0, 1, 0.5)] * 3, [(1, 1, 0.5)]])
    result = replay(LinearBidder(base_bid=10).fit(stats()), log, budget=100)
    assert result.auctions.tolist() == [3, 1]
    assert result.totals()["win_rate"] == 1.0 and result.totals()["clicks"] == 1


def test_lin_bid_truncates_like_the_published_code():
    # int(pCTR x b0 / avg CTR) = int(0.0123 x 60 / 0.01) = int(73.8) = 73: wins at 73, loses at 74.
    log = episodes([[(0, 73, 0.0123)], [(0, 74, 0.0123)]])
    result = replay(LinearBidder(base_bid=60).fit(stats()), log, budget=1000)
    assert result.impressions.tolist() == [1, 0]


def test_episode_budget_is_the_published_integer():
    info = CampaignStats(cpm=68.89276127323019, cpc=86552.66544417277, ctr=7.96e-4, price_counts=np.ones(301))
    assert [episode_budget(info, c0, 1000) for c0 in (1 / 32, 1 / 16, 1 / 8)] == [2152, 4305, 8611]
    with pytest.raises(ValueError, match="`budget_ratio` must be > 0"):
        episode_budget(info, 0, 1000)


def test_readers_agree_on_episode_and_flat_formats(tmp_path):
    rows = [(0, 12, 0.001), (1, 80, 0.02), (0, 5, 0.0005), (0, 300, 0.1), (1, 0, 0.03)]
    flat = tmp_path / "flat.txt"
    flat.write_text("".join(f"{c} {p} {q}\n" for c, p, q in rows))
    framed = tmp_path / "episodes.txt"
    framed.write_text("560870\t2\n1\n" + "".join(f"{c}\t{p}\t{q}\n" for c, p, q in rows[:2])
                      + "2\n" + "".join(f"{c}\t{p}\t{q}\n" for c, p, q in rows[2:4]) + "3\n"
                      + "".join(f"{c}\t{p}\t{q}\n" for c, p, q in rows[4:]))
    a, b = read_episodes(flat, horizon=2), read_episodes(framed)
    for x, y in ((a.click, b.click), (a.price, b.price), (a.pctr, b.pctr), (a.length, b.length)):
        np.testing.assert_array_equal(x, y)
    assert b.length.tolist() == [2, 2, 1] and b.number.tolist() == [1, 2, 3] and b.horizon == 2
    assert b.price[2, 1] == NO_AUCTION


def test_readers_reject_bad_files_with_one_sentence(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 10 1.5\n")
    with pytest.raises(InputFileError, match="pCTR in"):
        read_episodes(bad)
    long = tmp_path / "long.txt"
    long.write_text("1\t1\n1\n0\t1\t0.1\n0\t1\t0.1\n")
    with pytest.raises(InputFileError, match="more than T = 1"):
        read_episodes(long)
    info = tmp_path / "info.json"
    info.write_text('{"cost_train": 10}')
    with pytest.raises(InputFileError, match="lacks the field 'imp_train'"):
        read_campaign_stats(info)


def test_train_info_formats_agree(tmp_path):
    txt, js = tmp_path / "x.train-info.txt", tmp_path / "info.json"
    txt.write_text("CPC:\t2000.0\nCPM:\t50000.0\navg ctr:\t0.025\ncounter:\t1_2_3\n")
    js.write_text('{"cost_train": 2000, "imp_train": 40, "clk_train": 1, "price_counter_train": [1, 2, 3]}')
    a, b = read_campaign_stats(txt), read_campaign_stats(js)
    assert (a.cpm, a.cpc, a.ctr) == pytest.approx((b.cpm, b.cpc, b.ctr))
    np.testing.assert_allclose(a.price_pdf(), b.price_pdf())
    assert a.price_pdf().shape == (301,) and a.price_pdf().sum() == pytest.approx(1.0)


@pytest.mark.parametrize("text", ["0", "-1/32", "2", "abc", "1/0", ""])
def test_bad_budget_ratio_names_the_parameter(text):
    with pytest.raises(UserError, match="`budget-ratio`"):
        parse_ratio(text)


def test_budget_ratio_forms():
    assert parse_ratio("1/32") == parse_ratio("0.03125") == parse_ratio("3.125%") == 1 / 32
