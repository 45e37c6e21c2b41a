"""Fixtures of the create room: a small store with products, ads and segments."""

from __future__ import annotations

import pytest

from adpilot.store.db import Store


@pytest.fixture()
def store():  # type: ignore[no-untyped-def]
    s = Store(":memory:")
    s.con.execute("""INSERT INTO products VALUES
        ('p1', '牛仔外套', '简约百搭的外套', ['服装', '上衣'], MAP {'材质': '牛仔布', '颜色': '白色'}, 199.0, 'Acme', 'zh'),
        ('p2', 'Trail sneaker', 'Light trail shoe', ['Shoes'], MAP {'color': 'red'}, 89.0, 'Acme', 'en'),
        ('p3', '空属性商品', NULL, NULL, NULL, 9.9, NULL, 'zh')""")
    s.con.execute("""INSERT INTO ads VALUES ('a1', 'c1', 'p1', NULL, 'active'), ('a2', 'c1', 'p2', NULL, 'active'),
        ('a3', 'c2', 'p3', NULL, 'active')""")
    s.con.execute("CREATE TABLE segments (segment_id INTEGER PRIMARY KEY, description VARCHAR, size BIGINT, "
                  "centroid FLOAT[])")
    s.con.execute("INSERT INTO segments VALUES (1, '注重性价比的年轻上班族', 10, NULL)")
    s.con.execute("CREATE TABLE profiles (user_id VARCHAR PRIMARY KEY, segment_id INTEGER, keywords VARCHAR[])")
    s.con.execute("INSERT INTO profiles VALUES ('u_secret_1', 1, ['通勤', '简约']), ('u_secret_2', 1, ['通勤'])")
    yield s
    s.close()
