"""The record cutter of the text readers against a byte-by-byte reference."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adpilot.store.readers import record_ends


def _reference(data: bytes, parity: int) -> list[int]:
    """Newlines outside double quotes, walking the bytes one at a time."""
    ends, inside = [], bool(parity)
    for i, byte in enumerate(data):
        if byte == ord('"'):
            inside = not inside
        elif byte == ord("\n") and not inside:
            ends.append(i)
    return ends


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(lambda b: bytes(b'a"\n,'[x % 4] for x in b)), st.integers(0, 1))
def test_record_ends_match_a_byte_by_byte_walk(data, parity):
    buf = np.frombuffer(data, np.uint8)
    assert record_ends(buf, quote_aware=True, parity=parity).tolist() == _reference(data, parity)
    assert record_ends(buf, quote_aware=False).tolist() == [i for i, b in enumerate(data) if b == ord("\n")]


def test_record_ends_across_search_windows():
    """Records longer than the internal search window (4 MiB) with quoted newlines straddling its edges."""
    record = b'x,"' + b"a\n" * (3 << 20) + b'"\n'
    data = record * 3
    assert record_ends(np.frombuffer(data, np.uint8), quote_aware=True).tolist() == _reference(data, 0)
