"""Checking the bot flags on real labelled traffic: TalkingData ad clicks (``is_attributed`` = the app was
installed after the click). Fraudulent clicks rarely convert, so flagged IPs should convert far less often.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from adpilot.errors import InputFileError
from adpilot.understand.anomalies import AnomalyDetector, source_features

_CLICKS_SQL = """
SELECT CAST(ip AS VARCHAR) AS source, CAST(click_time AS TIMESTAMP) AS ts, app, device, os, channel,
       FALSE AS blind_click
FROM read_csv('{path}', header = true)
"""


def evaluate_talkingdata(path: str | Path, detector: AnomalyDetector | None = None) -> dict[str, Any]:
    """Flag IPs of a TalkingData click file; conversion rate of flagged vs unflagged IPs, Wilson 95% intervals.

    Intervals treat clicks as independent draws (clicks of one IP are correlated, so they are optimistic).
    """
    from adpilot.measure.intervals import wilson

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"TalkingData click file {path} does not exist")
    con = duckdb.connect()
    sql = _CLICKS_SQL.format(path=str(path).replace("'", "''"))
    try:
        features = source_features(con, sql, ("app", "device", "os", "channel"))
    except duckdb.Error as error:
        raise InputFileError(f"{path} is not a TalkingData clicks CSV ({str(error).splitlines()[0]})") from None
    flagged = (detector or AnomalyDetector()).fit_flag(features)
    con.register("flags", flagged[["source", "flagged"]])
    per_group = con.sql(f"""
        SELECT f.flagged, count(DISTINCT c.ip) AS sources, count(*) AS clicks,
               sum(c.is_attributed)::BIGINT AS conversions
        FROM read_csv('{str(path).replace("'", "''")}', header = true) c
        JOIN flags f ON f.source = CAST(c.ip AS VARCHAR) GROUP BY f.flagged ORDER BY f.flagged""").fetchall()
    result: dict[str, Any] = {"sources": len(flagged), "flagged_sources": int(flagged["flagged"].sum()),
                              "reason_counts": flagged.explode("reasons")["reasons"].value_counts().to_dict()}
    for is_flagged, sources, clicks, conversions in per_group:
        key = "flagged" if is_flagged else "unflagged"
        result[key] = {"sources": sources, "clicks": clicks, "conversions": conversions,
                       "cvr": wilson(conversions, clicks).to_dict()}
    return result
