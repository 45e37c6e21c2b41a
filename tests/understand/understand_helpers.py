"""Small hand-made stores for the understand room: two tastes (basketball, tea), one user without consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from adpilot.store import Store

PRODUCTS = [
    ("p1", "李宁 气垫篮球鞋 男款", ["运动", "篮球", "篮球鞋"], "李宁", 499.0, "zh"),
    ("p2", "耐克 实战篮球 7号球", ["运动", "篮球", "篮球"], "耐克", 199.0, "zh"),
    ("p3", "安踏 篮球运动袜 三双装", ["运动", "篮球", "配件"], "安踏", 39.0, "zh"),
    ("p4", "西湖龙井 明前绿茶 250克", ["食品", "茶叶", "绿茶"], "西湖", 288.0, "zh"),
    ("p5", "云南普洱 熟茶 饼茶 357克", ["食品", "茶叶", "普洱"], "大益", 158.0, "zh"),
    ("p6", "Ceramic teapot with infuser", ["Home", "Tea", "Teaware"], "Hario", 35.0, "en"),
]


def products_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"product_id": pid, "title": title, "description": f"{title} 正品", "category": cat,
         "attributes": {"产地": "中国"}, "price": price, "brand": brand, "language": lang}
        for pid, title, cat, brand, price, lang in PRODUCTS])


def event_rows(user: str, items: list[str], start: datetime, *, kind: str = "page_view",
               device: str = "ios", geo: str = "上海") -> list[dict[str, object]]:
    return [{"event_id": f"{user}-{kind}-{i}-{start.isoformat()}", "user_id": user, "session_id": f"{user}-s",
             "ts": start + timedelta(minutes=i), "type": kind, "item_id": item, "price": None, "value": None,
             "query": None, "text": None, "device": device, "geo": geo, "bot_flag": False}
            for i, item in enumerate(items)]


def events_frame() -> pd.DataFrame:
    t0 = datetime(2026, 3, 1, 13, tzinfo=UTC)  # 21:00 in Shanghai
    rows = (event_rows("u_ball", ["p1", "p2", "p3", "p1"], t0)
            + event_rows("u_ball", ["p1"], t0 + timedelta(hours=1), kind="purchase")
            + event_rows("u_tea", ["p4", "p5", "p6"], t0, device="android", geo="杭州")
            + event_rows("u_tea", ["p4"], t0 + timedelta(hours=2), kind="add_to_cart", device="android", geo="杭州")
            + event_rows("u_private", ["p1", "p2"], t0))
    rows.append({**rows[0], "event_id": "search-1", "type": "search", "item_id": None, "query": "篮球鞋 男"})
    rows.append({**rows[-1], "event_id": "review-1", "user_id": "u_tea", "type": "review", "item_id": "p4",
                 "text": "龙井茶 清香 很好喝", "session_id": "u_tea-s"})
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def users_frame() -> pd.DataFrame:
    return pd.DataFrame({"user_id": ["u_ball", "u_tea", "u_private"], "gender": ["m", "f", "m"],
                         "age_band": ["18-24", "35-44", "25-34"], "geo": ["上海", "杭州", "上海"],
                         "consent_personalisation": [True, True, False], "consent_ads": [True, True, True]})


def fill_store(store: Store, products: pd.DataFrame, events: pd.DataFrame, users: pd.DataFrame) -> Store:
    """Insert frames by column name, leaving the other columns to their defaults."""
    for table, frame in (("products", products), ("events", events), ("users", users)):
        store.con.register("_frame", frame)
        store.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
        store.con.unregister("_frame")
    return store
