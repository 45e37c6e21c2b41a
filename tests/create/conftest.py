"""Fixtures of the create room: a small store with products, ads and segments, and a scripted LLM."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adpilot.store.db import Store


class ScriptedLLM:
    """Returns given texts in order (cycling); stands for a model that misbehaves on purpose. ``fail_on`` makes
    the k-th call raise, to simulate a crash mid-batch."""

    source = "llm"

    def __init__(self, texts: Sequence[str], name: str = "scripted", fail_on: int | None = None) -> None:
        self.texts = list(texts)
        self.name = name
        self.fail_on = fail_on
        self.calls = 0

    def generate(self, messages, n=1, max_tokens=160, temperature=0.7, seed=0):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fail_on is not None and self.calls == self.fail_on:
            raise RuntimeError("simulated crash")
        return [self.texts[(seed + i) % len(self.texts)] for i in range(n)]


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
